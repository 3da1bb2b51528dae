"""A pool user's own HTCondor credential for the tests: an IDTOKEN for ``<user>@<uid_domain>`` and the client
configuration (``CONDOR_CONFIG``) that uses it, as the hub hands them to a user's server (issue 12).

:func:`mint_user_token` mints the token inside the pool's root with ``condor_token_create -key POOL``, as the
holder of the pool's signing key (the submit host, where the hub runs) would. :func:`write_user_client` writes
what a server gets: a private folder (``0700``, owned by the user) with

    condor_config   CONDOR_CONFIG: pool (its schedd is this host's), IDTOKENS only, the token folder below (0600)
    tokens.d/       SEC_TOKEN_DIRECTORY, the user's token (0600)
    passwords.d/    empty: no signing key, so a client run as root cannot mint itself a token
    log/            the client tools' LOG

The folder's path is the same on the host and in the pool's root when it lies in the user's home (homes are
bind-mounted at the same path), so the same client works for ``condor_submit`` run as the user in the root
(:meth:`UserClient.run_in_root`) and for ``htcondor2`` on the host (:meth:`UserClient.python`, a process with
the user's uid). Only IDTOKENS is allowed: in the root FS authentication would otherwise identify the user
without the token, and a test would not exercise what the token may do.

Fixture ``user_condor_client`` (registered in tests/conftest.py): a factory ``(user, lifetime=3600, ...) ->
UserClient`` writing into ``~<user>/.condorhub-test-condor-<n>``, removed after the test.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from devstack.directory import DEMO_USERS
from devstack.pool import HTCondorPool

__all__ = ["UserClient", "mint_user_token", "schedd_name", "user_identity", "write_user_client"]

#: What a submitter's token may do: read the pool's state and write to the queue (submit, remove, hold, edit
#: its own jobs). The pool's ALLOW lists decide where WRITE counts (the schedd only).
SUBMITTER_AUTHZ = ("READ", "WRITE")


def user_identity(pool: HTCondorPool, user: str) -> str:
    """The identity the pool knows ``user`` by: ``<user>@<uid_domain>``."""
    return f"{user}@{pool.uid_domain}"


def mint_user_token(pool: HTCondorPool, user: str, lifetime: int, *, authz: Sequence[str] = SUBMITTER_AUTHZ,
                    identity: str | None = None) -> str:
    """An IDTOKEN for ``<user>@<uid_domain>`` (or ``identity``), valid ``lifetime`` seconds, with ``authz``
    (default READ and WRITE), signed with the pool's key inside the pool's root. Returns the token text."""
    if lifetime <= 0:
        raise ValueError(f"lifetime must be positive seconds, not {lifetime}")
    argv = ["condor_token_create", "-identity", identity or user_identity(pool, user), "-key", "POOL",
            "-lifetime", str(int(lifetime))]
    for name in authz:
        argv += ["-authz", name]
    token = pool.run_in_root(argv, timeout=30).stdout.strip()
    if not token or "\n" in token:
        raise RuntimeError(f"condor_token_create gave no single token for {user}: {token[:200]!r}")
    return token


def schedd_name(pool: HTCondorPool) -> str:
    """The Name of the pool's schedd, as its ad in the collector says."""
    names = pool.run_in_root(["condor_status", "-schedd", "-af", "Name"], timeout=30).stdout.split()
    if len(names) != 1:
        raise RuntimeError(f"expected one schedd in the pool, the collector lists {names}")
    return names[0]


def _demo_owner(user: str) -> tuple[int, int] | None:
    for demo in DEMO_USERS:
        if demo.uid == user:
            return demo.uid_number, demo.gid_number
    return None


@dataclasses.dataclass(frozen=True)
class UserClient:
    """A user's HTCondor client: the folder :func:`write_user_client` wrote and how to use it."""

    user: str
    identity: str
    directory: Path
    uid: int | None
    gid: int | None

    @property
    def config(self) -> Path:
        """The CONDOR_CONFIG file."""
        return self.directory / "condor_config"

    @property
    def token_dir(self) -> Path:
        """SEC_TOKEN_DIRECTORY (holds ``<user>.token``)."""
        return self.directory / "tokens.d"

    @property
    def token_file(self) -> Path:
        return self.token_dir / f"{self.user}.token"

    @property
    def env(self) -> dict[str, str]:
        """What a user's server gets in its environment for HTCondor (merge into a process's env)."""
        return {"CONDOR_CONFIG": str(self.config)}

    def run_in_root(self, pool: HTCondorPool, cmd: Sequence[str] | str, *, check: bool = False,
                    timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """``cmd`` (e.g. ``condor_submit``) in the pool's root as the user, with this CONDOR_CONFIG; returns
        the completed process (check=False by default: tests look at refusals)."""
        if isinstance(cmd, str):
            cmd = ["/bin/sh", "-c", f"cd {self.directory} && {cmd}"]
        return pool.run_in_root(cmd, user=self.user, check=check, timeout=timeout, input=input,
                                env={**self.env, "HOME": str(self.directory.parent)})

    def python(self, code: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``code`` in a fresh Python on the host (the test environment's, with htcondor2), running with the
        user's uid and gid and only this CONDOR_CONFIG; returns the completed process."""
        if self.uid is None or self.gid is None:
            raise ValueError(f"{self.user} has no uid/gid here: pass uid and gid to write_user_client")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("_CONDOR_", "CONDOR_"))}
        env.update(self.env)
        env["HOME"] = str(self.directory.parent)
        uid, gid = self.uid, self.gid

        def drop() -> None:
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)

        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              timeout=timeout, cwd=str(self.directory), preexec_fn=drop)


def write_user_client(pool: HTCondorPool, user: str, directory: str | os.PathLike[str], *,
                      token: str | None = None, lifetime: int = 3600, uid: int | None = None,
                      gid: int | None = None) -> UserClient:
    """Write ``user``'s HTCondor client into ``directory`` (created, must not exist): CONDOR_CONFIG naming the
    pool and its schedd, IDTOKENS only, and ``token`` (default: a fresh one from :func:`mint_user_token` with
    ``lifetime``) in a private token folder. Everything is owned by ``uid``/``gid`` (default: the demo user's
    from :data:`~devstack.directory.DEMO_USERS`; root when the user is not one of them and none are given),
    folders 0700 and files 0600. Returns the :class:`UserClient`."""
    if uid is None and gid is None:
        owner = _demo_owner(user)
        uid, gid = owner if owner else (None, None)
    directory = Path(directory)
    directory.mkdir(mode=0o700)
    directory.chmod(0o700)
    token = token if token is not None else mint_user_token(pool, user, lifetime)
    client = UserClient(user, user_identity(pool, user), directory, uid, gid)
    for sub in ("tokens.d", "passwords.d", "log"):
        (directory / sub).mkdir(mode=0o700)
    # The configuration the htcondor role rendered for clients on the submit host (pool, domains, IDTOKENS
    # only), then this user's schedd and folders.
    rendered = (pool.root / "etc/condorhub/condor_config").read_text()
    config = f"""\
# CONDOR_CONFIG of {user}'s HTCondor client (tests/support/user_tokens.py), for the pool in {pool.run_dir}.
{rendered}
# --- {user}
# No SCHEDD_HOST: the tools and htcondor2.Schedd() find the schedd in the collector by this host's name (the
# test pool's schedd runs on this machine; SCHEDD_HOST = <name> makes HTCondor 23.9 resolve it as a host).
SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
SEC_TOKEN_DIRECTORY = {directory / 'tokens.d'}
SEC_TOKEN_SYSTEM_DIRECTORY = {directory / 'tokens.d'}
SEC_PASSWORD_DIRECTORY = {directory / 'passwords.d'}
SEC_PASSWORD_FILE = {directory / 'passwords.d' / 'POOL'}
LOG = {directory / 'log'}
"""
    _write_private(client.config, config)
    _write_private(client.token_file, token + "\n")
    if uid is not None and gid is not None:
        for path in (directory, *directory.rglob("*")):
            os.lchown(path, uid, gid)
    return client


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@pytest.fixture
def user_condor_client(condor_pool, ldap_home_base):
    """Factory ``(user, lifetime=3600, token=None) -> UserClient``: the user's client in a folder of their
    home (same path on the host and in the pool's root), removed after the test."""
    made: list[Path] = []
    counter = itertools.count()

    def make(user: str, lifetime: int = 3600, token: str | None = None) -> UserClient:
        home = Path(ldap_home_base) / user
        while True:
            directory = home / f".condorhub-test-condor-{next(counter)}"
            if not directory.exists():
                break
        made.append(directory)
        return write_user_client(condor_pool, user, directory, token=token, lifetime=lifetime)

    yield make
    for directory in made:
        shutil.rmtree(directory, ignore_errors=True)
