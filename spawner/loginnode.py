"""Servers on the login node: the hub machine itself, running as the user's own Unix account.

VISPA let students do small interactive work on the login node and sent heavy work to the batch system;
this is that first half, and it is also what a one-machine installation without HTCondor offers.

Unlike JupyterHub's LocalProcessSpawner this does not need the user in the hub's NSS (``pwd``): the LDAP
authenticator already read the posixAccount (uidNumber, gidNumber, homeDirectory) into the encrypted
auth state, so that is the identity the process gets. A hub host that resolves LDAP users through
sssd/nslcd works the same; one that does not still starts servers with the right uid.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Bool, Integer, TraitError, validate


@dataclass(frozen=True)
class PosixIdentity:
    """Who a server runs as, from the user's LDAP posixAccount."""

    uid: int
    gid: int
    home: str
    shell: str = ""

    @classmethod
    def from_auth_state(cls, auth_state: dict | None, *, min_uid: int) -> PosixIdentity:
        """The identity in ``auth_state``; refuses one that is missing or is root/a system account."""
        state = auth_state or {}
        try:
            uid = int(state["uid_number"])
            gid = int(state["gid_number"])
            home = str(state["home_directory"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPError(
                500,
                "Your account has no Unix identity (posixAccount uidNumber, gidNumber, homeDirectory) in the "
                "directory, so no server can be started for it. Ask your administrators to add one.",
            ) from None
        if uid < min_uid or gid < min_uid:
            # Never start a server as root or a system account, whatever the directory says.
            raise web.HTTPError(
                403, f"Refusing to start a server as uid {uid}/gid {gid}: below the minimum uid {min_uid}."
            )
        if not os.path.isabs(home):
            raise web.HTTPError(500, f"Home directory {home!r} in the directory is not an absolute path.")
        return cls(uid=uid, gid=gid, home=home, shell=str(state.get("login_shell") or ""))


class LoginNodeSpawner(LocalProcessSpawner):
    """Start ``jupyterhub-singleuser`` on the hub machine as the user's LDAP uid/gid."""

    min_uid = Integer(
        1000,
        config=True,
        help="""
        Lowest uid and gid a server may run as. Accounts below it (root, daemons) are refused even if the
        directory lists them, so a compromised or mistaken LDAP entry cannot get a root server.
        """,
    )

    create_home = Bool(
        True,
        config=True,
        help="""
        Create the user's home directory (mode 0700, owned by the user) when it does not exist yet.
        Sites whose homes live on NFS created by account provisioning can turn this off; a missing home is
        then an error shown on the spawn page.
        """,
    )

    umask = Integer(
        0o077,
        config=True,
        help="""
        File mode creation mask of the server and everything it starts (kernels, terminals). The default,
        0o077, makes what a user's code creates readable by that user only: condorhub's users often share
        one primary group, so 0o027 or 0o022 would let every other user read it wherever they can reach it
        (scratch, a folder shared on purpose). A user can still chmod a file to share it.
        """,
    )

    nice = Integer(
        10,
        config=True,
        help="""
        Scheduling niceness (0-19) of the server and everything it starts (kernels, terminals, the user's
        programs). The login node is the hub machine: at the default 0 a class's servers starting and its
        cells running take the CPU from the hub and the proxy, whose event loop then answers every user late
        (benchmarks/class_scale.py: docs/benchmarks.md). At 10 the hub's processes get about ten times a
        user process's share when they compete, and users' work still uses every idle core. A user may raise
        their niceness further, never lower it (that takes root).
        """,
    )

    @validate("nice")
    def _valid_nice(self, proposal):
        value = proposal["value"]
        if not 0 <= value <= 19:
            raise TraitError(f"LoginNodeSpawner.nice must be between 0 and 19 (e.g. 10), not {value!r}")
        return value

    @validate("umask")
    def _valid_umask(self, proposal):
        value = proposal["value"]
        if not 0 <= value <= 0o777:
            raise TraitError(f"LoginNodeSpawner.umask must be between 0 and 0o777 (e.g. 0o077), not {value!r}")
        return value

    identity: PosixIdentity | None = None
    _condor_config = ""  # the user's own CONDOR_CONFIG, when the hub gave this server HTCondor access
    _pool_identity: PosixIdentity | None = None  # whose home holds it (kept when the state is cleared)

    async def run_auth_state_hook(self, auth_state):
        self.identity = PosixIdentity.from_auth_state(auth_state, min_uid=self.min_uid)
        return await super().run_auth_state_hook(auth_state)

    def _require_identity(self) -> PosixIdentity:
        if self.identity is None:
            raise web.HTTPError(
                500,
                "No Unix identity for this server: the hub needs auth state (enable_auth_state) filled by "
                "condorhub's LDAP authenticator.",
            )
        return self.identity

    def _prepare_home(self, identity: PosixIdentity) -> None:
        if os.path.isdir(identity.home):
            return
        if not self.create_home:
            raise web.HTTPError(500, f"Home directory {identity.home} does not exist; ask your administrators.")
        # 0700 whatever the hub's umask: users share a primary group, so a group-readable home is everyone's.
        os.makedirs(identity.home, mode=0o700, exist_ok=True)
        os.chmod(identity.home, 0o700)
        os.chown(identity.home, identity.uid, identity.gid)

    def make_preexec_fn(self, name):
        identity = self._require_identity()
        umask = self.umask
        nice = self.nice

        def preexec():
            # Runs in the child between fork and exec: drop every group the hub had, then become the user.
            os.umask(umask)
            # As root, before setuid: the hub's own niceness plus this; the user cannot take it back.
            os.nice(nice)
            os.setgroups([identity.gid])
            os.setgid(identity.gid)
            os.setuid(identity.uid)
            try:
                os.chdir(identity.home)
            except OSError as err:
                print(f"cannot enter home {identity.home}: {err}", file=sys.stderr)
                os.chdir("/")

        return preexec

    def user_env(self, env):
        identity = self._require_identity()
        env["USER"] = env["LOGNAME"] = self.user.name
        env["HOME"] = identity.home
        if identity.shell:
            env["SHELL"] = identity.shell
        if self._condor_config:
            env["CONDOR_CONFIG"] = self._condor_config
        return env

    async def move_certs(self, paths):
        # Only used with internal_ssl; the stock version looks the user up in pwd.
        raise NotImplementedError("internal_ssl is not supported for login-node servers")

    @property
    def _pool_folder(self) -> str:
        """~/.condorhub/<this>: the server's own HTCondor credential and client configuration."""
        return f"htcondor-{self.name or 'default'}"

    async def _give_pool_access(self, identity: PosixIdentity) -> None:
        """Write the user's own HTCondor token and CONDOR_CONFIG (see condorhub.spawner.condor.credentials)
        into a 0700 folder of their home, as the user, and point the server at it. Without a pool (or a
        key the hub can read) the server starts without it, and the log says why."""
        from condorhub.spawner.condor.credentials import CredentialError, UserCredentials

        credentials = UserCredentials.instance(config=self.config)
        if not credentials.enabled:
            return
        from condorhub.spawner.condor.queue import HTCondorQueue
        from condorhub.spawner.condor.secretfile import Account, SecretFileError, write_private_folder

        account = Account(identity.uid, identity.gid, identity.home)
        folder = os.path.join(identity.home, ".condorhub", self._pool_folder)
        tokens = os.path.join(folder, "tokens.d")
        loop = asyncio.get_running_loop()
        try:
            token = await loop.run_in_executor(None, credentials.mint, self.user.name, credentials.login_node_lifetime)
            schedd = await HTCondorQueue.instance(config=self.config).schedd_name()
            files = {"condor_config": credentials.config_for(tokens, schedd), "tokens.d/user.token": token}
            await loop.run_in_executor(None, write_private_folder, account, self._pool_folder, files)
        except (CredentialError, SecretFileError, OSError) as err:
            self.log.error("No HTCondor credential for %s's login-node server: %s", self.user.name, err)
            return
        self._condor_config = os.path.join(folder, "condor_config")
        self._pool_identity = identity

    async def _take_pool_access(self, identity: PosixIdentity | None) -> None:
        if identity is None:
            return
        from condorhub.spawner.condor.credentials import UserCredentials
        from condorhub.spawner.condor.secretfile import Account, SecretFileError, remove_private_folder

        if not UserCredentials.instance(config=self.config).enabled:
            return
        account = Account(identity.uid, identity.gid, identity.home)
        try:
            await asyncio.get_running_loop().run_in_executor(None, remove_private_folder, account, self._pool_folder)
        except SecretFileError as err:
            self.log.error("Could not remove %s's HTCondor credential: %s", self.user.name, err)

    async def start(self):
        identity = self._require_identity()
        self._prepare_home(identity)
        self._condor_config = ""
        await self._give_pool_access(identity)
        return await super().start()

    async def stop(self, now=False):
        # Taken first: LocalProcessSpawner's poll() clears the state (the identity too) once the process is gone;
        # a server that died by itself was polled (and cleared) before this stop.
        identity = self.identity or self._pool_identity
        try:
            await super().stop(now=now)
        finally:
            # The token goes with the server: a later one gets a fresh token.
            await self._take_pool_access(identity)

    def get_state(self):
        state = super().get_state()
        if self.identity is not None:
            # Kept so that stop() after a hub restart still knows the server's identity.
            state["identity"] = {"uid": self.identity.uid, "gid": self.identity.gid, "home": self.identity.home}
        return state

    def load_state(self, state):
        super().load_state(state)
        ident = state.get("identity")
        if ident:
            self.identity = PosixIdentity(uid=ident["uid"], gid=ident["gid"], home=ident["home"])

    def clear_state(self):
        super().clear_state()
        self.identity = None
