"""A real HTCondor pool on this machine: the "GPU node" of the tests and the demo, deployed by the roles.

The node is an overlay over the cached Debian 13 root of :mod:`devstack.node_root`, into which
condorhub's own Ansible roles (``ansible/site.yml``: condorhub_base, ldap_client, htcondor, worker_env)
installed HTCondor 23.9, nslcd and the worker environment. :class:`HTCondorPool` runs one pool in it via
``chroot``: collector, negotiator, schedd and a startd with *simulated* GPUs, on 127.0.0.1 behind the
shared port. The hub, on the host, talks to it with the PyPI ``htcondor2`` bindings, as it would talk to
a production pool; so the tests exercise the configuration ops deploy, not one of their own.

What ``up`` does (everything per run lives in ``run_dir``; the cached root stays untouched)::

    run_dir/
      upper/, work/    the overlay's writable layer: what this run changed (condor's logs in
                       upper/var/log/condor stay there after ``down``, for a look)
      root/            the node: overlay of the cached root, with /proc, /dev, /run, /tmp, the
                       users' homes (``home_base``, at the same path) and, read-only, the hub's course
                       repositories (``courses_dir``, at the same path) mounted in
      inventory/       the one-host inventory of this run (group_vars hold the signing key: 0600)
      ansible-apply.log  the run's ``ansible-playbook site.yml``
      services/        the daemons' output (nslcd, condor_master)
      tmp/             the root's /tmp
      host/            for the hub on the host (mode 0700, root only):
        condor_config  CONDOR_CONFIG for the htcondor2 bindings: the hub configuration the htcondor role
                       rendered (/etc/condorhub/condor_config in the node) + where token and log are here
        tokens.d/condorhub.token   the hub's IDTOKEN the role minted (mode 0600)
      pool-state.json  what ``down`` (also from another process) needs

The steps: mount the overlay; apply site.yml with the run's settings (port, LDAP server, a fresh signing
key, the current checkout's condorhub wheel: ``ansible-playbook`` converges the cached root to them in
~30 s); start the services the roles rendered (/etc/condorhub/services.d, no init system in a chroot);
wait for a startd with the GPUs and a schedd; check the hub's token from the host (a held job submitted
and removed, which also creates the hub identity's queue user record).

Security is the htcondor role's (see its template): every command authenticated, encrypted and
integrity-checked; FS and IDTOKENS; the hub identity a queue super user that may impersonate real users
only (never root or the node's local accounts); WRITE for the hub and condor only. Each run mints its own
signing key and hub token (the cached root holds neither).

CLI::

    python -m devstack.pool build [--force]
    python -m devstack.pool up --ldap-uri ldap://127.0.0.1:389 --ldap-base dc=condorhub,dc=test \\
                                      --home-base /home [--run-dir DIR] [--probe-user alice]
    python -m devstack.pool status [--run-dir DIR]
    python -m devstack.pool down [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from devstack import node_root as nr
from devstack.playbook import PlaybookError, run_playbook
from devstack.services import ServiceError, start_services

__all__ = ["DEFAULT_RUN_DIR", "HTCondorPool", "PoolError", "main"]

DEFAULT_RUN_DIR = Path(os.environ.get("CONDORHUB_POOL_RUN_DIR", "/var/tmp/condorhub-pool"))
DEFAULT_HUB_IDENTITY = "condorhub@condorhub.test"
DEFAULT_UID_DOMAIN = "condorhub.test"
# Host-wide claims: which run_dir holds which port, so two pools never share one.
CLAIM_DIR = Path("/run/condorhub-pool")

STATE_FILE = "pool-state.json"
LOG_FILES = ("MasterLog", "CollectorLog", "SharedPortLog", "NegotiatorLog", "StartLog", "SchedLog")


class PoolError(RuntimeError):
    """The pool could not be started, used or stopped; the message says why (with log tails)."""


Log = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


# ------------------------------------------------------------------------------------- pool


class HTCondorPool:
    """One HTCondor pool (central manager, schedd, GPU startd) on an overlay of the cached node root.

    :param run_dir: per-run state (created; wiped at ``up``, except ``pool-state.json`` of a running pool).
    :param ldap_uri: LDAP server nslcd in the node resolves users from, e.g. ``ldap://127.0.0.1:3890``.
    :param ldap_base: search base for nslcd, e.g. ``dc=condorhub,dc=test``.
    :param home_base: host folder bind-mounted at the same path in the node (the users' homes; NFS in
        production).
    :param courses_dir: host folder bind-mounted read-only at the same path in the node: the hub's course
        repositories (the site file's ``hub.courses_dir``), as nfs_client mounts them on an execute node; the
        roles make the node's git trust the repositories in it.
    :param hub_identity: the IDTOKEN identity of the hub (queue super user).
    :param uid_domain: the pool's domain (UID_DOMAIN and FILESYSTEM_DOMAIN; identities are ``user@domain``).
    :param port: the shared port (collector) on 127.0.0.1.
    :param num_gpus: simulated GPUs of the startd.
    :param num_cpus: CPUs the startd advertises (default: max(4, 2 * num_gpus)), so that the GPUs, not this
        machine's 2 cores, limit how many 1-GPU jobs run at once.
    :param group_quotas: accounting group -> dynamic quota (fair share), as ops set
        ``condorhub_accounting_group_quotas``; empty: no groups configured.
    :param probe_user: a user that must resolve through LDAP before ``up`` returns.
    :param ldap_bind_dn: DN nslcd binds as (a read-only service account); None: anonymous.
    :param ldap_bind_password: that DN's password.
    :param install_condorhub: deploy a wheel of ``repo`` into the worker environment at ``up`` (the
        current code); False keeps the one the cached root was built with.
    :param repo: the condorhub checkout (wheel, ansible/ roles).
    :param root: a built node root to run on; default: build/reuse the cached one for the current recipe.
    :param start_timeout: seconds for the daemons to come up (slot with GPUs, schedd answering).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] = DEFAULT_RUN_DIR,
        ldap_uri: str | None = None,
        ldap_base: str | None = None,
        home_base: str | os.PathLike[str] | None = None,
        *,
        courses_dir: str | os.PathLike[str] | None = None,
        hub_identity: str = DEFAULT_HUB_IDENTITY,
        uid_domain: str = DEFAULT_UID_DOMAIN,
        port: int = 9618,
        num_gpus: int = 2,
        num_cpus: int | None = None,
        group_quotas: dict[str, float] | None = None,
        probe_user: str | None = None,
        ldap_bind_dn: str | None = None,
        ldap_bind_password: str | None = None,
        install_condorhub: bool = True,
        repo: str | os.PathLike[str] = nr.REPO_DIR,
        root: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = 120.0,
        log: Log = _print,
    ) -> None:
        self.run_dir = Path(run_dir).absolute()
        self.ldap_uri = ldap_uri
        self.ldap_base = ldap_base
        if (ldap_uri is None) != (ldap_base is None):
            raise ValueError("give both ldap_uri and ldap_base, or neither")
        self.home_base = Path(home_base).absolute() if home_base else None
        self.courses_dir = Path(courses_dir).absolute() if courses_dir else None
        self.hub_identity = hub_identity
        self.uid_domain = uid_domain
        self.port = port
        self.num_gpus = num_gpus
        self.num_cpus = num_cpus or max(4, 2 * num_gpus)
        self.group_quotas = dict(group_quotas or {})
        self.probe_user = probe_user
        self.ldap_bind_dn = ldap_bind_dn
        self.ldap_bind_password = ldap_bind_password
        self.install_condorhub = install_condorhub
        self.repo = Path(repo)
        self._node_root = Path(root).absolute() if root else None
        self.cache_dir = Path(cache_dir) if cache_dir else nr.CACHE_DIR
        self.start_timeout = start_timeout
        self.log = log
        self.timings: dict[str, float] = {}

    # ---------------------------------------------------------------- paths and environment

    @property
    def node_root(self) -> Path:
        """The cached root the overlay reads from (built on first use)."""
        if self._node_root is None:
            if not (self.repo / "pyproject.toml").is_file():
                # The wheel and the roles come from a checkout; a wrong CONDORHUB_SOURCE has neither.
                raise PoolError(
                    f"{self.repo} is not a condorhub checkout (no pyproject.toml); set CONDORHUB_SOURCE to the "
                    "checkout to deploy from (setup.sh does)")
            try:
                self._node_root = nr.build_node_root(self.cache_dir, repo=self.repo, log=self.log)
            except (nr.NodeRootError, PlaybookError) as exc:
                raise PoolError(f"the GPU node's root could not be built: {exc}") from exc
        return self._node_root

    @property
    def root(self) -> Path:
        """The running node's root (the overlay; only populated while the pool is up)."""
        return self.run_dir / "root"

    @property
    def upper_dir(self) -> Path:
        return self.run_dir / "upper"

    @property
    def host_dir(self) -> Path:
        return self.run_dir / "host"

    @property
    def condor_config_path(self) -> Path:
        """CONDOR_CONFIG for host-side clients (htcondor2 bindings, condor_* tools)."""
        return self.host_dir / "condor_config"

    @property
    def token_path(self) -> Path:
        """The hub's IDTOKEN (root-only file)."""
        return self.host_dir / "tokens.d" / "condorhub.token"

    @property
    def signing_key_path(self) -> Path:
        """The pool's signing key as the hub on this host reads it (a copy, root only): the hub signs users'
        tokens with it, as a hub on a submit host of the htcondor role does with /etc/condor/passwords.d/POOL."""
        return self.host_dir / "signing-key" / "POOL"  # not the client's SEC_PASSWORD_DIRECTORY

    @property
    def user_map_path(self) -> Path:
        """The pool's user map as the hub on this host writes it: the file the htcondor role created for the
        node's schedd (its default ``htcondor_user_map_file``), seen through the overlay."""
        return self.root / "etc/condorhub/pool-users.map"

    @property
    def user_map_reconfig_command(self) -> list[str]:
        """How root on this host has the node's schedd re-read the map: ``condor_reconfig -schedd`` inside the
        node, where FS authentication identifies local root (from the host it could not: the node's /tmp is
        its own)."""
        return ["chroot", str(self.root), "condor_reconfig", "-schedd"]

    @property
    def hub_user_map_settings(self) -> dict[str, object]:
        """The site file's ``htcondor.user_map`` for a hub on this host."""
        return {"file": str(self.user_map_path), "reconfig_command": self.user_map_reconfig_command}

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for host-side htcondor2 use (merge into os.environ or a subprocess env;
        in-process, call ``htcondor2.reload_config()`` after setting them)."""
        return {"CONDOR_CONFIG": str(self.condor_config_path)}

    @property
    def collector_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        """condor's daemon logs (in the overlay's writable layer: still there after ``down``)."""
        return self.upper_dir / "var/log/condor"

    # ---------------------------------------------------------------- context manager

    def __enter__(self) -> HTCondorPool:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---------------------------------------------------------------- commands in the root

    def run_in_root(self, cmd: Sequence[str] | str, user: str | None = None, *,
                    check: bool = True, timeout: float = 60, env: dict[str, str] | None = None,
                    input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the node (chroot), as root or as ``user`` (resolved inside the node, so LDAP
        users work). A string runs through ``/bin/sh -c``. Returns the completed process (text
        stdout/stderr); raises PoolError on a non-zero exit when ``check``."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if user is not None:
            argv = ["/usr/sbin/runuser", "-u", user, "--", *argv]
        full = ["chroot", str(self.root), *argv]
        try:
            proc = subprocess.run(full, env=nr.chroot_env(**(env or {})), capture_output=True, text=True,
                                  timeout=timeout, input=input, stdin=None if input else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise PoolError(f"in the node: `{' '.join(argv)}` timed out after {timeout}s") from exc
        if check and proc.returncode != 0:
            raise PoolError(f"in the node{' as ' + user if user else ''}: `{' '.join(argv)}` exited "
                            f"{proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc

    # ---------------------------------------------------------------- up

    def up(self) -> HTCondorPool:
        """Start the pool (see module docstring). On failure everything is undone and PoolError says what
        went wrong, with the tails of the logs."""
        t_up = time.monotonic()
        node = self.node_root  # builds the cached root if needed (not counted in the up timing below)
        self.timings["root"] = time.monotonic() - t_up
        t_up = time.monotonic()
        self._check_free()
        try:
            self._step("overlay + mounts", lambda: self._mount_node(node))
            self._step("ansible-playbook site.yml (this run's settings)", self._apply_roles)
            self._step("services (nslcd, condor)", self._start_services)
            if self.probe_user:
                self._step(f"{self.probe_user} resolves through LDAP", self._wait_for_probe_user)
            self._step("wait for startd with GPUs + schedd", self._wait_ready)
            self._step("hub credentials for the host", self._export_hub_client)
            self._step("hub client check (IDTOKENS)", self._check_hub_client)
        except BaseException as exc:
            self.log(f"pool: up failed, cleaning up: {exc}")
            try:
                self.down()
            except Exception as down_exc:  # keep the original error
                self.log(f"pool: down after failed up also failed: {down_exc}")
            if isinstance(exc, (nr.NodeRootError, PlaybookError, ServiceError, OSError)):
                raise PoolError(str(exc)) from exc
            raise
        self.timings["up"] = time.monotonic() - t_up
        self.log(f"pool: up in {self.timings['up']:.1f}s; collector {self.collector_address}; "
                 f"CONDOR_CONFIG={self.condor_config_path}")
        return self

    def _step(self, name: str, fn: Callable[[], None]) -> None:
        t0 = time.monotonic()
        fn()
        self.timings[name] = dt = time.monotonic() - t0
        self.log(f"  pool: {name}: {dt:.1f}s")

    def _claim_path(self) -> Path:
        return CLAIM_DIR / f"port-{self.port}.json"

    def _check_free(self) -> None:
        """One pool per port. A claim whose pool no longer runs (crashed, or never taken down) is
        cleaned up first; so is an earlier run in our own run_dir."""
        CLAIM_DIR.mkdir(parents=True, exist_ok=True)
        claim = self._claim_path()
        if claim.exists():
            try:
                other = json.loads(claim.read_text())
            except (OSError, ValueError):
                other = {}
            other_run = Path(other.get("run_dir", self.run_dir))
            if other_run != self.run_dir and _root_processes(other_run / "root"):
                raise PoolError(
                    f"a pool from {other_run} is running on port {self.port}; stop it first "
                    f"(python -m devstack.pool down --run-dir {other_run}) or choose another port")
            if other_run != self.run_dir:
                self.log(f"pool: cleaning up the earlier run in {other_run}")
                HTCondorPool(other_run, port=self.port, log=self.log).down()
            claim.unlink(missing_ok=True)
        if (self.run_dir / STATE_FILE).exists() or nr.mounted_under(self.root):
            HTCondorPool(self.run_dir, port=self.port, log=self.log).down()
        if _port_open(self.port):
            raise PoolError(f"127.0.0.1:{self.port} is already in use (another HTCondor?); "
                            "stop it or choose another port")

    def _mount_node(self, node: Path) -> None:
        for sub in ("upper", "work", "root", "tmp", "host", "inventory", "services", "dist"):
            path = self.run_dir / sub
            if path.exists():
                if nr.mounted_under(path):
                    raise PoolError(f"{path} still has mounts: {nr.mounted_under(path)}")
                shutil.rmtree(path)
        for sub in ("upper", "work", "root"):
            (self.run_dir / sub).mkdir(parents=True)
        (self.run_dir / "tmp").mkdir(mode=0o1777)
        (self.run_dir / "tmp").chmod(0o1777)
        self.host_dir.mkdir(mode=0o700)
        for sub in ("tokens.d", "passwords.d", "log"):
            (self.host_dir / sub).mkdir(mode=0o700)
        self._save_state(node)
        nr._run(["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir={node},upperdir={self.upper_dir},workdir={self.run_dir / 'work'}", str(self.root)],
                step="mount the node's overlay")
        mounts = nr.ChrootMounts(self.root, self.cache_dir).setup()
        mounts.bind(self.run_dir / "tmp", "/tmp")
        if self.home_base:
            self.home_base.mkdir(parents=True, exist_ok=True)
            mounts.bind(self.home_base, self.home_base)
        if self.courses_dir:
            # Read-only, as execute nodes mount it: a server in the node can pull courses, never change them.
            self.courses_dir.mkdir(parents=True, exist_ok=True)
            target = mounts.bind(self.courses_dir, self.courses_dir)
            nr._run(["mount", "-o", "remount,bind,ro", str(target)], step="make the courses folder read-only")

    def _apply_roles(self) -> None:
        """site.yml with this run's settings: the roles converge the cached node to them."""
        if self.install_condorhub:
            wheel = nr.build_wheel(self.run_dir / "dist", self.repo, self.cache_dir)
        else:
            wheel = next((self.root / "opt/condorhub/dist").glob("condorhub-*.whl"))
        variables = nr.node_vars(
            root=self.root, wheel=wheel, port=self.port,
            ldap_uri=self.ldap_uri or "ldap://127.0.0.1/", ldap_base=self.ldap_base or "dc=condorhub,dc=test",
            ldap_bind_dn=self.ldap_bind_dn, ldap_bind_password=self.ldap_bind_password,
            signing_key=secrets.token_urlsafe(32), domain=self.uid_domain, hub_identity=self.hub_identity,
            num_gpus=self.num_gpus, num_cpus=self.num_cpus, group_quotas=self.group_quotas,
            cache_dir=self.cache_dir)
        if self.courses_dir:
            variables["condorhub_courses_dir"] = str(self.courses_dir)
        inventory = nr.write_inventory(self.run_dir / "inventory", variables)
        roles_seen: list[str] = []

        def progress(task: str) -> None:
            role = task.split(" : ")[0] if " : " in task else ""
            if role and role not in roles_seen:
                roles_seen.append(role)
                self.log(f"  pool: ansible: role {role}")

        run = run_playbook(self.repo / "ansible", inventory, self.run_dir / "ansible-apply.log",
                           progress=progress, timeout=900)
        if run.rc != 0:
            raise PoolError(f"ansible-playbook site.yml failed on the GPU node (rc {run.rc}, log {run.log}):\n"
                            f"{run.failure()}")
        self.timings["ansible changed"] = run.recap["changed"]

    def _start_services(self) -> None:
        start_services(self.root, self.run_dir / "services", timeout=self.start_timeout,
                       log=lambda msg: self.log(f"  pool: {msg.strip()}"))

    def _wait_for_probe_user(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            proc = self.run_in_root(["getent", "passwd", self.probe_user], check=False)
            if proc.returncode == 0:
                self.log(f"  pool: LDAP user via NSS: {proc.stdout.strip()}")
                return
            if time.monotonic() > deadline:
                raise PoolError(
                    f"user {self.probe_user!r} does not resolve through nslcd (uri {self.ldap_uri}, base "
                    f"{self.ldap_base}); is the LDAP server up?\n{_tail(self.run_dir / 'services/20-nslcd.log')}")
            time.sleep(0.3)

    def _log_tails(self) -> str:
        parts = []
        for name in LOG_FILES:
            path = self.log_dir / name
            if path.exists():
                parts.append(f"--- {name} (last lines) ---\n{_tail(path, 15)}")
        return "\n".join(parts) or f"(no daemon logs in {self.log_dir})"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while True:
            slots = self.run_in_root(["condor_status", "-af", "Name", "TotalSlotGPUs", "AssignedGPUs"],
                                     check=False, timeout=20)
            gpus = 0
            for line in slots.stdout.splitlines():
                fields = line.split()
                if len(fields) >= 2 and fields[1].isdigit():
                    gpus += int(fields[1])
            schedd = self.run_in_root(["condor_q", "-totals"], check=False, timeout=20)
            if gpus >= self.num_gpus and schedd.returncode == 0:
                self.log(f"  pool: startd: {' | '.join(slots.stdout.split(chr(10))[:3])}")
                return
            last = (f"condor_status: {slots.stdout.strip()} {slots.stderr.strip()[-300:]}\n"
                    f"condor_q: rc={schedd.returncode} {schedd.stderr.strip()[-300:]}")
            if time.monotonic() > deadline:
                raise PoolError(
                    f"the pool did not come up within {self.start_timeout:.0f}s (want a startd with "
                    f"{self.num_gpus} GPUs and a schedd answering).\n{last}\n{self._log_tails()}")
            if not any("condor_master" in _cmdline(pid) for pid in _root_processes(self.root)):
                raise PoolError(f"condor_master died.\n{last}\n{self._log_tails()}\n"
                                f"{_tail(self.run_dir / 'services/30-condor.log')}")
            time.sleep(0.5)

    def _export_hub_client(self) -> None:
        """The hub's client side, as the htcondor role rendered it for a submit host, made usable on the
        host: its token (minted by the role) and its configuration with this host's paths."""
        token = self.root / "etc/condorhub/hub.token"
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token.read_text())
        self.signing_key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.signing_key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write((self.root / "etc/condor/passwords.d/POOL").read_bytes())
        rendered = (self.root / "etc/condorhub/condor_config").read_text()
        h = self.host_dir
        self.condor_config_path.write_text(f"""\
# CONDOR_CONFIG of the hub's htcondor2 client on this host, for the pool in {self.run_dir}.
# Below: what the htcondor role rendered as /etc/condorhub/condor_config on the node (a submit host);
# at the end: where the token and the client log are on this host.
{rendered}
# --- this host
SEC_TOKEN_DIRECTORY = {h / 'tokens.d'}
SEC_TOKEN_SYSTEM_DIRECTORY = {h / 'tokens.d'}
SEC_PASSWORD_DIRECTORY = {h / 'passwords.d'}
LOG = {h / 'log'}
""")

    def _check_hub_client(self) -> None:
        """From the host, as the hub: authenticate with the token (IDTOKENS), query collector and schedd,
        and submit+remove one held job. The submit also creates the hub identity's queue user record,
        without which HTCondor 23.9 does not yet treat it as a queue super user (a *pending* user record
        is not super; so its first submit with +Owner would fail)."""
        code = (
            "import json, htcondor2 as h\n"
            f"c = h.Collector({self.collector_address!r})\n"
            "slots = c.query(h.AdTypes.Startd, projection=['Name', 'TotalSlotGPUs'])\n"
            "s = h.Schedd(c.locate(h.DaemonType.Schedd))\n"
            "r = s.submit(h.Submit({'executable': '/bin/true', 'hold': 'true', "
            "'transfer_executable': 'false', 'should_transfer_files': 'NO', "
            "'+CondorhubPoolCheck': 'true'}))\n"
            "s.act(h.JobAction.Remove, f'ClusterId == {r.cluster()}')\n"
            "print(json.dumps({'slots': len(slots), 'cluster': r.cluster()}))\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("_CONDOR_", "CONDOR_"))}
        env.update(self.env)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=60, cwd="/")
        if proc.returncode != 0:
            raise PoolError(f"the hub's htcondor2 client (IDTOKENS, {self.condor_config_path}) "
                            f"cannot use the pool:\n{proc.stderr[-3000:]}\n{self._log_tails()}")

    # ---------------------------------------------------------------- state

    def _save_state(self, node: Path) -> None:
        state = {
            "node_root": str(node),
            "run_dir": str(self.run_dir),
            "port": self.port,
            "condor_config": str(self.condor_config_path),
            "hub_identity": self.hub_identity,
            "pid": os.getpid(),
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        CLAIM_DIR.mkdir(parents=True, exist_ok=True)
        self._claim_path().write_text(json.dumps(state) + "\n")

    @classmethod
    def from_run_dir(cls, run_dir: str | os.PathLike[str] = DEFAULT_RUN_DIR, log: Log = _print) -> HTCondorPool:
        """The pool whose state ``run_dir`` holds (for ``down``/``status`` from another process)."""
        run_dir = Path(run_dir).absolute()
        state_file = run_dir / STATE_FILE
        if not state_file.exists():
            raise PoolError(f"no pool state in {run_dir} ({STATE_FILE} missing)")
        state = json.loads(state_file.read_text())
        return cls(run_dir, root=state.get("node_root"), port=state.get("port", 9618),
                   hub_identity=state.get("hub_identity", DEFAULT_HUB_IDENTITY), log=log)

    # ---------------------------------------------------------------- down

    def down(self) -> None:
        """Stop every process in the node and undo every mount; safe to call twice, and after a failed or
        partial ``up``. Raises PoolError only if something could not be cleaned up."""
        root = self.root
        t0 = time.monotonic()
        problems = []
        if any("condor_master" in _cmdline(pid) for pid in _root_processes(root)):
            # Graceful: the master stops its daemons, the starters their jobs. Then the rest (nslcd) gets
            # SIGTERM below.
            self.run_in_root(["condor_off", "-master", "-fast"], check=False, timeout=15)
            _wait_gone(root, 15, lambda pid: "condor" in _cmdline(pid))
        leftover = _kill_root_processes(root, self.log)
        if leftover:
            problems.append(f"processes still running in {root}: {leftover}")
        nr.unmount_all_under(root)
        still = nr.mounted_under(root)
        if still:
            problems.append(f"still mounted: {still}")
        try:
            claim = self._claim_path()
            if claim.exists() and json.loads(claim.read_text()).get("run_dir") == str(self.run_dir):
                claim.unlink()
        except (OSError, ValueError):
            pass
        (self.run_dir / STATE_FILE).unlink(missing_ok=True)
        self.timings["down"] = time.monotonic() - t0
        if problems:
            raise PoolError("pool down incomplete: " + "; ".join(problems))
        self.log(f"pool: down in {self.timings['down']:.1f}s")

    # ---------------------------------------------------------------- status

    def status(self) -> dict:
        """Processes, mounts and (if running) the slots of the pool."""
        root = self.root
        procs = _root_processes(root)
        info: dict = {
            "node_root": str(self._node_root) if self._node_root else None,
            "run_dir": str(self.run_dir),
            "running": bool(procs),
            "processes": [f"{pid} {_cmdline(pid)}" for pid in procs],
            "mounts": nr.mounted_under(root),
            "condor_config": str(self.condor_config_path),
        }
        if procs:
            st = self.run_in_root(["condor_status", "-af", "Name", "TotalSlotGPUs", "GPUs",
                                   "TotalSlotCpus", "State"], check=False, timeout=20)
            info["slots"] = st.stdout.strip().splitlines()
            q = self.run_in_root(["condor_q", "-allusers", "-totals"], check=False, timeout=20)
            info["queue"] = q.stdout.strip().splitlines()[-1:] if q.returncode == 0 else q.stderr.strip()
        return info


# ------------------------------------------------------------------------- processes


def _root_processes(root: Path) -> list[int]:
    """PIDs of processes whose root directory is ``root`` (i.e. everything chrooted into it)."""
    target = str(Path(root).resolve())
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            proc_root = os.readlink(f"/proc/{entry.name}/root")
        except OSError:
            continue
        if proc_root == target or proc_root.startswith(target + "/"):
            pids.append(int(entry.name))
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def _wait_gone(root: Path, seconds: float, which: Callable[[int], bool] = lambda pid: True) -> bool:
    deadline = time.monotonic() + seconds
    while any(which(pid) for pid in _root_processes(root)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _kill_root_processes(root: Path, log: Log) -> list[int]:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        pids = _root_processes(root)
        if not pids:
            return []
        log(f"pool: sending {sig.name} to {len(pids)} process(es) left in the root")
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        _wait_gone(root, wait)
    return _root_processes(root)


# ------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.pool", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="build (or reuse) the cached node root (ansible-playbook site.yml)")
    p_build.add_argument("--force", action="store_true", help="rebuild even if cached")
    p_up = sub.add_parser("up", help="start the pool")
    p_up.add_argument("--ldap-uri")
    p_up.add_argument("--ldap-base")
    p_up.add_argument("--home-base", help="host folder of the users' homes (same path inside)")
    p_up.add_argument("--courses-dir", help="host folder of the hub's course repositories (same path inside, read-only)")
    p_up.add_argument("--probe-user", help="wait until this user resolves through LDAP")
    p_up.add_argument("--ldap-bind-dn", help="DN nslcd binds as (a read-only service account)")
    p_up.add_argument("--ldap-bind-password-file", help="file holding that DN's password")
    p_up.add_argument("--hub-identity", default=DEFAULT_HUB_IDENTITY)
    p_up.add_argument("--port", type=int, default=9618)
    p_up.add_argument("--gpus", type=int, default=2)
    p_up.add_argument("--group-quota", action="append", default=[], metavar="GROUP=SHARE",
                      help="accounting group and its dynamic quota, e.g. group_students=0.5 (repeatable)")
    p_up.add_argument("--no-condorhub", action="store_true",
                      help="keep the worker's condorhub from the cached root (no wheel of the checkout)")
    for p in (p_up, sub.add_parser("down", help="stop the pool, unmount everything"),
              sub.add_parser("status", help="show processes, mounts, slots")):
        p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR))
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        parser.error("run as root (debootstrap, chroot and mounts need it)")
    if args.cmd == "build":
        t0 = time.monotonic()
        root = nr.build_node_root(force=args.force)
        print(f"{root}  ({time.monotonic() - t0:.1f}s)")
        return 0
    if args.cmd == "up":
        quotas = {}
        for item in args.group_quota:
            group, _, share = item.partition("=")
            try:
                quotas[group] = float(share)
            except ValueError:
                parser.error(f"--group-quota {item!r}: give GROUP=SHARE with SHARE a number, e.g. group_students=0.5")
        pool = HTCondorPool(args.run_dir, args.ldap_uri, args.ldap_base, args.home_base,
                            courses_dir=args.courses_dir,
                            hub_identity=args.hub_identity, port=args.port, num_gpus=args.gpus,
                            group_quotas=quotas, probe_user=args.probe_user,
                            install_condorhub=not args.no_condorhub, ldap_bind_dn=args.ldap_bind_dn,
                            ldap_bind_password=Path(args.ldap_bind_password_file).read_text().strip()
                            if args.ldap_bind_password_file else None)
        pool.up()
        print(f"export CONDOR_CONFIG={pool.condor_config_path}")
        return 0
    run_dir = Path(args.run_dir)
    if args.cmd == "down":
        if not (run_dir / STATE_FILE).exists() and not nr.mounted_under(run_dir / "root"):
            print(f"no pool state in {run_dir}; nothing to do")
            return 0
        pool = HTCondorPool.from_run_dir(run_dir) if (run_dir / STATE_FILE).exists() else HTCondorPool(run_dir)
        pool.down()
        return 0
    if args.cmd == "status":
        if not (run_dir / STATE_FILE).exists():
            print(json.dumps({"running": False, "run_dir": str(run_dir)}, indent=2))
            return 1
        info = HTCondorPool.from_run_dir(run_dir).status()
        print(json.dumps(info, indent=2))
        return 0 if info["running"] else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
