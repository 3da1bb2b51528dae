"""A real HTCondor pool on this machine: the "GPU execute node" of the tests and the demo.

The node is the cached Debian trixie root of :mod:`condorhub.demo.worker_root` (HTCondor 23.9 from
Debian; bookworm, the host, has none). :class:`HTCondorPool` runs one personal pool in it via
``chroot``: collector, negotiator, schedd and a startd with two *simulated* GPUs, everything
listening on 127.0.0.1 behind the shared port (default 9618). The hub, on the host, talks to it
with the PyPI ``htcondor2`` bindings, as it would talk to a production pool.

What ``up`` does (everything per run lives in ``run_dir``; the cached root stays clean)::

    run_dir/
      condor/          condor LOCAL_DIR (log, spool, execute, ...), bind-mounted at
                       /var/lib/condorhub-pool in the root; passwords.d/POOL = signing key
      etc/             hosts, nslcd.conf, 99-condorhub-run.config: bind-mounted over the root's
      tmp/             the root's /tmp
      run-site/        condorhub itself (wheel of the checkout), at /opt/condorhub/run-site
      host/            for the hub on the host (mode 0700, root only):
        condor_config  CONDOR_CONFIG for the htcondor2 bindings (127.0.0.1:<port>, IDTOKENS)
        tokens.d/condorhub.token   the hub's IDTOKEN (mode 0600)
      pool-state.json  mounts and paths, so ``down`` (also from another process) undoes them

Mounts inside the root: /proc, /dev (+ /dev/pts, a fresh /dev/shm), a tmpfs on /run (nslcd's
socket), the files and folders above, and ``home_base`` at the same path (standing in for the
NFS homes of production).

Security (see also docs in the report of the commit that added this):

* Daemons require authentication, encryption and integrity for every command (READ included).
  Methods: FS (tools and daemons inside the root) and IDTOKENS.
* The pool signing key is generated fresh at every ``up`` (``condor_store_cred -c``); the hub's
  token is minted with ``condor_token_create -identity <hub_identity> -authz READ -authz WRITE``
  and written to ``run_dir/host/tokens.d`` (0600, root only). The host-side config allows only
  IDTOKENS as client method.
* ``hub_identity`` (default ``condorhub@condorhub.test``) is a queue super user and may set a
  job's ``Owner`` to a real user: ``QUEUE_SUPER_USER_MAY_IMPERSONATE`` is a regex that rejects
  root and every account of the root's /etc/passwd (the system accounts; LDAP users are not
  there), and nslcd ignores LDAP entries with uid < 1000 (``nss_min_uid``). HTCondor itself never
  lets a job's owner be root.
* WRITE is allowed to the hub identity and condor's own identities only; users inside their jobs
  can read the queue but not submit.

CLI::

    python -m condorhub.demo.pool build [--force]
    python -m condorhub.demo.pool up --ldap-uri ldap://127.0.0.1:389 --ldap-base dc=condorhub,dc=test \\
                                      --home-base /home [--run-dir DIR] [--probe-user alice]
    python -m condorhub.demo.pool status [--run-dir DIR]
    python -m condorhub.demo.pool down [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from condorhub.demo import worker_root as wr

__all__ = ["DEFAULT_RUN_DIR", "HTCondorPool", "PoolError", "main"]

DEFAULT_RUN_DIR = Path(os.environ.get("CONDORHUB_POOL_RUN_DIR", "/var/tmp/condorhub-pool"))
DEFAULT_HUB_IDENTITY = "condorhub@condorhub.test"
DEFAULT_UID_DOMAIN = "condorhub.test"
# Host-wide claims: which run_dir holds which root/port, so two pools never share either.
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


def _passwd_entries(root: Path) -> list[list[str]]:
    return [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
            if line and not line.startswith("#")]


def _account_ids(root: Path, name: str) -> tuple[int, int]:
    for fields in _passwd_entries(root):
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise PoolError(f"the worker root has no account {name!r} (is the root complete?)")


def _group_id(root: Path, name: str) -> int:
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise PoolError(f"the worker root has no group {name!r}")


def impersonation_regex(root: Path) -> str:
    """QUEUE_SUPER_USER_MAY_IMPERSONATE: a valid POSIX user name that is none of the root's local
    accounts (root and the system accounts: daemon, nslcd, condor, condorhub, nobody, ...).
    Real users come from LDAP and are never in the root's /etc/passwd."""
    local = sorted({fields[0] for fields in _passwd_entries(root)} | {"root", "condor"})
    names = "|".join(re.escape(n) for n in local)
    return rf"^(?!(?:{names})$)[a-z_][a-z0-9_.-]{{0,31}}$"


# ------------------------------------------------------------------------------------- pool


class HTCondorPool:
    """One personal HTCondor pool running in the cached worker root.

    :param run_dir: per-run state (created; its pool subfolders are wiped at ``up``).
    :param ldap_uri: LDAP server nslcd in the root resolves users from, e.g. ``ldap://127.0.0.1:3890``.
        None: no nslcd (only the root's local accounts exist).
    :param ldap_base: search base for nslcd, e.g. ``dc=condorhub,dc=test``.
    :param home_base: host folder bind-mounted at the same path in the root (users' homes).
    :param hub_identity: the IDTOKEN identity of the hub (queue super user).
    :param uid_domain: UID_DOMAIN of the pool (identities are ``user@uid_domain``).
    :param port: the shared port (collector) on 127.0.0.1.
    :param num_gpus: simulated GPUs of the startd.
    :param num_cpus: CPUs the startd advertises (default: max(4, 2 * num_gpus)), so that the GPUs,
        not this machine's 2 cores, limit how many 1-GPU jobs run at once.
    :param probe_user: a user that must resolve through LDAP before ``up`` returns.
    :param install_condorhub: build a wheel of ``repo`` and install it for the single-user env.
    :param impersonate_regex: override :func:`impersonation_regex`.
    :param root: a built worker root; default: build/reuse the cached one for the current recipe.
    :param start_timeout: seconds for the daemons to come up (slot with GPUs, schedd answering).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] = DEFAULT_RUN_DIR,
        ldap_uri: str | None = None,
        ldap_base: str | None = None,
        home_base: str | os.PathLike[str] | None = None,
        *,
        hub_identity: str = DEFAULT_HUB_IDENTITY,
        uid_domain: str = DEFAULT_UID_DOMAIN,
        port: int = 9618,
        num_gpus: int = 2,
        num_cpus: int | None = None,
        probe_user: str | None = None,
        ldap_bind_dn: str | None = None,
        ldap_bind_password: str | None = None,
        install_condorhub: bool = True,
        repo: str | os.PathLike[str] = wr.REPO_DIR,
        impersonate_regex: str | None = None,
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
        self.hub_identity = hub_identity
        self.uid_domain = uid_domain
        self.port = port
        self.num_gpus = num_gpus
        self.num_cpus = num_cpus or max(4, 2 * num_gpus)
        self.probe_user = probe_user
        self.ldap_bind_dn = ldap_bind_dn
        self.ldap_bind_password = ldap_bind_password
        self.install_condorhub = install_condorhub
        self.repo = Path(repo)
        if install_condorhub and not (self.repo / "pyproject.toml").is_file():
            # An installed (non-editable) condorhub lives in site-packages: no source to build the worker's
            # wheel from, and no dependency list for the root's recipe.
            raise PoolError(
                f"{self.repo} is not a condorhub checkout (no pyproject.toml); set CONDORHUB_SOURCE to the "
                "checkout condorhub was installed from (setup.sh does)"
            )
        self.impersonate_regex = impersonate_regex
        self._root = Path(root).absolute() if root else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.start_timeout = start_timeout
        self.log = log
        self.timings: dict[str, float] = {}
        self._mounts: list[str] = []
        self._created_dirs: list[str] = []

    # ---------------------------------------------------------------- paths and environment

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = wr.build_worker_root(self.cache_dir, repo=self.repo, log=self.log)
        return self._root

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
    def env(self) -> dict[str, str]:
        """Environment variables for host-side htcondor2 use (merge into os.environ or a
        subprocess env; in-process, call ``htcondor2.reload_config()`` after setting them)."""
        return {"CONDOR_CONFIG": str(self.condor_config_path)}

    @property
    def collector_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "condor"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    def _in_root(self, path: str | Path) -> Path:
        return self.root / str(path).lstrip("/")

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
        """Run ``cmd`` inside the root (chroot), as root or as ``user`` (resolved inside the root,
        so LDAP users work). A string runs through ``/bin/sh -c``. Returns the completed process
        (text stdout/stderr); raises PoolError on a non-zero exit when ``check``."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if user is not None:
            argv = ["/usr/sbin/runuser", "-u", user, "--", *argv]
        full = ["chroot", str(self.root), *argv]
        run_env = wr.chroot_env(**(env or {}))
        try:
            proc = subprocess.run(full, env=run_env, capture_output=True, text=True,
                                  timeout=timeout, input=input, stdin=None if input else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise PoolError(f"in root: `{' '.join(argv)}` timed out after {timeout}s") from exc
        if check and proc.returncode != 0:
            raise PoolError(f"in root{' as ' + user if user else ''}: `{' '.join(argv)}` exited "
                            f"{proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc

    # ---------------------------------------------------------------- up

    def up(self) -> HTCondorPool:
        """Start the pool (see module docstring). On failure everything is undone and PoolError
        says what went wrong, with the tails of the daemon logs."""
        t_up = time.monotonic()
        root = self.root  # builds the root if needed (not counted in the up timing below)
        self.timings["root"] = time.monotonic() - t_up
        t_up = time.monotonic()
        self._check_free(root)
        try:
            self._step("prepare run dir", self._prepare_run_dir)
            self._step("mounts", self._mount_all)
            self._step("pool signing key + hub token", self._make_credentials)
            if self.ldap_uri:
                self._step("nslcd", self._start_nslcd)
            if self.install_condorhub:
                self._step("condorhub wheel", self._install_condorhub)
            self._step("condor_master", self._start_master)
            self._step("wait for startd with GPUs + schedd", self._wait_ready)
            self._step("hub client check (IDTOKENS)", self._check_hub_client)
        except BaseException as exc:
            self.log(f"pool: up failed, cleaning up: {exc}")
            try:
                self.down()
            except Exception as down_exc:  # keep the original error
                self.log(f"pool: down after failed up also failed: {down_exc}")
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

    def _claim_path(self, root: Path) -> Path:
        return CLAIM_DIR / f"{root.name}.json"

    def _check_free(self, root: Path) -> None:
        """One pool per root (its mount points) and per port. A claim whose pool no longer runs
        (crashed, or never taken down) is cleaned up first."""
        CLAIM_DIR.mkdir(parents=True, exist_ok=True)
        own_state = self.run_dir / STATE_FILE
        for claim in sorted(CLAIM_DIR.glob("*.json")):
            try:
                other = json.loads(claim.read_text())
            except (OSError, ValueError):
                claim.unlink(missing_ok=True)
                continue
            other_root, other_run = Path(other["root"]), Path(other["run_dir"])
            clashes = other_root == root or other.get("port") == self.port
            if other_run != self.run_dir and clashes and _root_processes(other_root):
                raise PoolError(
                    f"a pool from {other_run} is running in {other_root} on port "
                    f"{other.get('port')}; stop it first: "
                    f"python -m condorhub.demo.pool down --run-dir {other_run}")
            if other_run == self.run_dir or not _root_processes(other_root):
                self.log(f"pool: cleaning up the earlier run in {other_run}")
                stale = HTCondorPool(other_run, root=other_root, port=other.get("port", 9618),
                                     log=self.log)
                stale._mounts = list(other.get("mounts", []))
                stale._created_dirs = list(other.get("created_dirs", []))
                stale.down()
                claim.unlink(missing_ok=True)
        if own_state.exists():
            HTCondorPool.from_run_dir(self.run_dir, log=self.log).down()
        if _port_open(self.port):
            raise PoolError(f"127.0.0.1:{self.port} is already in use (another HTCondor?); "
                            "stop it or choose another port")

    def _prepare_run_dir(self) -> None:
        root = self.root
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("condor", "etc", "tmp", "run-site", "host", "wheel"):
            shutil.rmtree(self.run_dir / sub, ignore_errors=True)
        condor_uid, condor_gid = _account_ids(root, "condor")
        for sub in ("log", "spool", "execute", "lock", "run", "cred_dir", "passwords.d", "tokens.d"):
            d = self.state_dir / sub
            d.mkdir(parents=True)
            if sub in ("passwords.d", "tokens.d", "cred_dir"):
                d.chmod(0o700)  # root only: the pool signing key
            else:
                os.chown(d, condor_uid, condor_gid)
                d.chmod(0o755)
        (self.run_dir / "tmp").mkdir()
        (self.run_dir / "tmp").chmod(0o1777)
        (self.run_dir / "run-site").mkdir()
        (self.run_dir / "run-site").chmod(0o755)
        self.host_dir.mkdir(mode=0o700)
        (self.host_dir / "tokens.d").mkdir(mode=0o700)
        (self.host_dir / "passwords.d").mkdir(mode=0o700)
        (self.host_dir / "log").mkdir(mode=0o700)
        etc = self.run_dir / "etc"
        etc.mkdir()
        (etc / "hosts").write_text(self._hosts_file())
        (etc / "99-condorhub-run.config").write_text(self._pool_config(root))
        nslcd = etc / "nslcd.conf"
        nslcd.write_text(self._nslcd_conf())
        os.chown(nslcd, 0, _group_id(root, "nslcd"))
        nslcd.chmod(0o640)
        self.condor_config_path.write_text(self._host_config())
        self._save_state()

    def _hosts_file(self) -> str:
        hostname = socket.gethostname()
        text = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
        names = {n for line in text.splitlines() if not line.strip().startswith("#")
                 for n in line.split()[1:]}
        extra = "" if hostname in names else f"127.0.0.1 {hostname}\n"
        return f"127.0.0.1 localhost\n{extra}{text}"

    def _nslcd_conf(self) -> str:
        lines = [
            "# condorhub pool: nslcd as on the production GPU nodes (users and groups from LDAP)",
            "uid nslcd",
            "gid nslcd",
            f"uri {self.ldap_uri or 'ldap://127.0.0.1/'}",
            f"base {self.ldap_base or 'dc=condorhub,dc=test'}",
            "# never map LDAP entries onto system uids (root, daemons): real users only",
            "nss_min_uid 1000",
            "tls_cacertfile /etc/ssl/certs/ca-certificates.crt",
        ]
        if self.ldap_bind_dn:
            lines += [f"binddn {self.ldap_bind_dn}", f"bindpw {self.ldap_bind_password or ''}"]
        return "\n".join(lines) + "\n"

    def _pool_config(self, root: Path) -> str:
        regex = self.impersonate_regex or impersonation_regex(root)
        st = wr.POOL_STATE_DIR
        return f"""\
# condorhub test/demo pool, generated by condorhub.demo.pool for {self.run_dir}
# (bind-mounted over {wr.RUN_CONDOR_CONFIG} in the worker root; not part of the cached root)
use ROLE: Personal
CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
# loopback only: no IPv6 listener on the machine's other addresses
ENABLE_IPV6 = False
COLLECTOR_HOST = 127.0.0.1:{self.port}
USE_SHARED_PORT = True
SHARED_PORT_PORT = {self.port}
UID_DOMAIN = {self.uid_domain}
FILESYSTEM_DOMAIN = {self.uid_domain}

LOCAL_DIR = {st}
LOG = $(LOCAL_DIR)/log
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = $(LOCAL_DIR)/execute
LOCK = $(LOCAL_DIR)/lock
RUN = $(LOCAL_DIR)/run
CRED_STORE_DIR = $(LOCAL_DIR)/cred_dir
SEC_PASSWORD_DIRECTORY = $(LOCAL_DIR)/passwords.d
SEC_TOKEN_SYSTEM_DIRECTORY = $(LOCAL_DIR)/tokens.d
# No SSL here (FS + IDTOKENS): the collector must not mint a CA and host certificate into the
# cached root's /etc/condor; anything SSL-ish would go to the per-run LOCAL_DIR.
COLLECTOR_BOOTSTRAP_SSL_CERTIFICATE = False
AUTH_SSL_SERVER_CERTFILE = $(LOCAL_DIR)/passwords.d/hostcert.pem
AUTH_SSL_SERVER_KEYFILE = $(LOCAL_DIR)/passwords.d/hostkey.pem
TRUST_DOMAIN_CAFILE = $(LOCAL_DIR)/passwords.d/trust_domain_ca.pem
TRUST_DOMAIN_CAKEY = $(LOCAL_DIR)/passwords.d/trust_domain_ca_privkey.pem
SEC_SYSTEM_KNOWN_HOSTS = $(LOCAL_DIR)/known_hosts

# The master would otherwise retune the *host's* kernel (pid_max, port range, dirty bytes...).
ENABLE_KERNEL_TUNING = False
# This sandbox refuses unshare(): no per-job mount or pid namespaces.
MOUNT_UNDER_SCRATCH =
USE_PID_NAMESPACES = False

# The "GPU node": simulated GPUs; CPUs advertised so that GPUs are what limits 1-GPU jobs.
use FEATURE: GPUs
GPU_DISCOVERY_EXTRA = -simulate:0,{self.num_gpus}
NUM_CPUS = {self.num_cpus}

# --- security: authenticated, encrypted, integrity-checked everything, also READ.
SEC_DEFAULT_AUTHENTICATION = REQUIRED
SEC_DEFAULT_ENCRYPTION = REQUIRED
SEC_DEFAULT_INTEGRITY = REQUIRED
SEC_READ_AUTHENTICATION = REQUIRED
SEC_READ_ENCRYPTION = REQUIRED
SEC_READ_INTEGRITY = REQUIRED
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
ALLOW_READ = *
# Submitting and changing jobs: the hub (IDTOKENS) and condor itself, not the users in their jobs.
ALLOW_WRITE = {self.hub_identity} root@* condor@* condor_pool@*
# The hub submits on behalf of users: Owner = <user>. Only real (LDAP) users, never root or a
# system account of this node.
QUEUE_SUPER_USERS = root, condor, {self.hub_identity}
QUEUE_SUPER_USER_MAY_IMPERSONATE = {regex}
# Jobs run as real users only: the hub's own local account may not own a runnable job (the held
# check job that `up` submits and removes is the one exception).
SUBMIT_REQUIREMENT_NAMES = $(SUBMIT_REQUIREMENT_NAMES) CondorhubRealUsersOnly
SUBMIT_REQUIREMENT_CondorhubRealUsersOnly = Owner =!= "{wr.HUB_ACCOUNT}" || JobStatus == 5
SUBMIT_REQUIREMENT_CondorhubRealUsersOnly_REASON = "jobs of the hub's own account ({wr.HUB_ACCOUNT}) are not permitted; submit with Owner = <user>"

# --- quick turnaround for tests and the demo (production keeps the defaults)
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 5
UPDATE_INTERVAL = 5
STARTER_UPDATE_INTERVAL = 5
JOB_START_DELAY = 0
"""

    def _host_config(self) -> str:
        h = self.host_dir
        return f"""\
# CONDOR_CONFIG for the hub's htcondor2 bindings on the host: the condorhub pool in
# {self.run_dir}. Authentication: IDTOKENS only, with the token in {h / 'tokens.d'}.
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:{self.port}
ENABLE_IPV6 = False
UID_DOMAIN = {self.uid_domain}
# The hub and the node share the users' homes (NFS in production): jobs submitted with
# should_transfer_files = NO require the node's FileSystemDomain to equal the submitter's.
FILESYSTEM_DOMAIN = {self.uid_domain}
SEC_CLIENT_AUTHENTICATION = REQUIRED
SEC_CLIENT_ENCRYPTION = REQUIRED
SEC_CLIENT_INTEGRITY = REQUIRED
SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
SEC_TOKEN_DIRECTORY = {h / 'tokens.d'}
SEC_TOKEN_SYSTEM_DIRECTORY = {h / 'tokens.d'}
SEC_PASSWORD_DIRECTORY = {h / 'passwords.d'}
LOG = {h / 'log'}
"""

    # mounts -------------------------------------------------------------

    def _mount(self, args: Sequence[str], target: Path) -> None:
        proc = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise PoolError(f"mount {' '.join(args)} {target}: {proc.stderr.strip()}")
        self._mounts.append(str(target))
        self._save_state()

    def _mkdir_in_root(self, path: Path) -> Path:
        """mkdir -p inside the root, remembering what was created (removed again at down)."""
        target = self._in_root(path)
        missing = []
        p = target
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            self._created_dirs.append(str(d))
        return target

    def _mount_all(self) -> None:
        root = self.root
        self._mount(["-t", "proc", "proc"], root / "proc")
        self._mount(["--bind", "/dev"], root / "dev")
        if Path("/dev/pts").is_mount() and (root / "dev/pts").exists():
            self._mount(["--bind", "/dev/pts"], root / "dev/pts")
        self._mount(["-t", "tmpfs", "-o", "mode=1777,size=1g", "tmpfs"], root / "dev/shm")
        self._mount(["-t", "tmpfs", "-o", "mode=755,size=64m", "tmpfs"], root / "run")
        self._mount(["--bind", str(self.run_dir / "tmp")], root / "tmp")
        self._mount(["--bind", str(self.state_dir)], self._in_root(wr.POOL_STATE_DIR))
        etc = self.run_dir / "etc"
        self._mount(["--bind", str(etc / "hosts")], root / "etc/hosts")
        self._mount(["--bind", str(etc / "nslcd.conf")], root / "etc/nslcd.conf")
        self._mount(["--bind", str(etc / "99-condorhub-run.config")],
                    self._in_root(wr.RUN_CONDOR_CONFIG))
        self._mount(["--bind", str(self.run_dir / "run-site")], self._in_root(wr.RUN_SITE))
        if self.home_base:
            self.home_base.mkdir(parents=True, exist_ok=True)
            target = self._mkdir_in_root(self.home_base)
            self._mount(["--bind", str(self.home_base)], target)
        # /run/lock for tools that expect it
        (root / "run/lock").mkdir(exist_ok=True)

    # credentials ----------------------------------------------------------

    def _make_credentials(self) -> None:
        # Fresh pool signing key per run (only root can read it: passwords.d is 0700 root).
        self.run_in_root(["condor_store_cred", "add", "-c", "-i", "-"],
                         input=secrets.token_urlsafe(32) + "\n")
        # The hub's token: READ + WRITE only (no ADMINISTRATOR/DAEMON), no expiry; it dies with
        # the per-run signing key.
        token = self.run_in_root(["condor_token_create", "-identity", self.hub_identity,
                                  "-key", "POOL", "-authz", "READ", "-authz", "WRITE"]).stdout.strip()
        if not token.count(".") == 2:
            raise PoolError(f"condor_token_create printed no token: {token[:200]!r}")
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")

    # nslcd ------------------------------------------------------------------

    def _start_nslcd(self) -> None:
        uid, gid = _account_ids(self.root, "nslcd")
        run_nslcd = self.root / "run/nslcd"
        run_nslcd.mkdir(exist_ok=True)
        os.chown(run_nslcd, uid, gid)
        self.run_in_root(["/usr/sbin/nslcd"])  # daemonizes; pid in /run/nslcd/nslcd.pid
        deadline = time.monotonic() + 20
        while not (self.root / "run/nslcd/socket").exists():
            if time.monotonic() > deadline:
                raise PoolError("nslcd did not create /run/nslcd/socket within 20s")
            time.sleep(0.1)
        if self.probe_user:
            while True:
                proc = self.run_in_root(["getent", "passwd", self.probe_user], check=False)
                if proc.returncode == 0:
                    self.log(f"  pool: LDAP user via NSS: {proc.stdout.strip()}")
                    break
                if time.monotonic() > deadline:
                    raise PoolError(
                        f"user {self.probe_user!r} does not resolve through nslcd "
                        f"(uri {self.ldap_uri}, base {self.ldap_base}); is the LDAP server up?")
                time.sleep(0.3)

    # condorhub wheel -------------------------------------------------------

    def _install_condorhub(self) -> None:
        wheel_dir = self.run_dir / "wheel"
        wheel_dir.mkdir(exist_ok=True)
        env = {**os.environ, "PIP_CACHE_DIR": str((self.cache_dir or wr.CACHE_DIR) / "pip"),
               "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        with tempfile.TemporaryDirectory(prefix="condorhub-wheel-") as build_tmp:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir),
                 str(self.repo)], capture_output=True, text=True, env={**env, "TMPDIR": build_tmp},
                timeout=600)
        if proc.returncode != 0:
            raise PoolError(f"pip wheel {self.repo} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
        wheels = sorted(wheel_dir.glob("condorhub-*.whl"))
        if not wheels:
            raise PoolError(f"pip wheel produced no condorhub wheel in {wheel_dir}")
        shutil.copy(wheels[-1], self.run_dir / "tmp" / wheels[-1].name)
        self.run_in_root([f"{wr.WORKER_VENV}/bin/pip", "install", "-q", "--no-deps", "--no-index",
                          "--disable-pip-version-check", "--target", wr.RUN_SITE,
                          f"/tmp/{wheels[-1].name}"], timeout=300)
        (self.run_dir / "tmp" / wheels[-1].name).unlink()
        subprocess.run(["chmod", "-R", "a+rX", str(self.run_dir / "run-site")], check=True)

    # condor -------------------------------------------------------------------

    def _start_master(self) -> None:
        out = open(self.run_dir / "condor_master.out", "w")
        with out:
            proc = subprocess.run(
                ["chroot", str(self.root), "/usr/sbin/condor_master",
                 "-pidfile", f"{wr.POOL_STATE_DIR}/run/master.pid"],
                env=wr.chroot_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=30)
        if proc.returncode != 0:
            raise PoolError(f"condor_master exited {proc.returncode}: "
                            f"{_tail(self.run_dir / 'condor_master.out')}\n{self._log_tails()}")

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
            slots = self.run_in_root(
                ["condor_status", "-af", "Name", "TotalSlotGPUs", "AssignedGPUs"],
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
                    f"the pool did not come up within {self.start_timeout:.0f}s (want a startd "
                    f"with {self.num_gpus} GPUs and a schedd answering).\n{last}\n{self._log_tails()}")
            if not _root_processes(self.root):
                raise PoolError(f"condor_master died.\n{last}\n{self._log_tails()}")
            time.sleep(0.5)

    def _check_hub_client(self) -> None:
        """From the host, as the hub: authenticate with the token (IDTOKENS), query collector and
        schedd, and submit+remove one held job. The submit also creates the hub identity's queue
        user record, without which HTCondor 23.9 does not yet treat it as a queue super user
        (a *pending* user record is not super; so its first submit with +Owner would fail)."""
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

    def _save_state(self) -> None:
        state = {
            "root": str(self.root),
            "run_dir": str(self.run_dir),
            "port": self.port,
            "mounts": self._mounts,
            "created_dirs": self._created_dirs,
            "condor_config": str(self.condor_config_path),
            "hub_identity": self.hub_identity,
            "pid": os.getpid(),
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        CLAIM_DIR.mkdir(parents=True, exist_ok=True)
        self._claim_path(self.root).write_text(json.dumps(state) + "\n")

    @classmethod
    def from_run_dir(cls, run_dir: str | os.PathLike[str] = DEFAULT_RUN_DIR,
                     log: Log = _print) -> HTCondorPool:
        """The pool whose state ``run_dir`` holds (for ``down``/``status`` from another process)."""
        run_dir = Path(run_dir).absolute()
        state_file = run_dir / STATE_FILE
        if not state_file.exists():
            raise PoolError(f"no pool state in {run_dir} ({STATE_FILE} missing)")
        state = json.loads(state_file.read_text())
        pool = cls(run_dir, root=state["root"], port=state.get("port", 9618),
                   hub_identity=state.get("hub_identity", DEFAULT_HUB_IDENTITY), log=log)
        pool._mounts = list(state.get("mounts", []))
        pool._created_dirs = list(state.get("created_dirs", []))
        return pool

    # ---------------------------------------------------------------- down

    def down(self) -> None:
        """Stop every process in the root and undo every mount; safe to call twice, and after a
        failed or partial ``up``. Raises PoolError only if something could not be cleaned up."""
        if self._root is None:
            state_file = self.run_dir / STATE_FILE
            if not state_file.exists():
                return
            other = HTCondorPool.from_run_dir(self.run_dir, log=self.log)
            self._root, self._mounts, self._created_dirs = other._root, other._mounts, other._created_dirs
        root = self.root
        t0 = time.monotonic()
        claim = self._claim_path(root)
        try:
            owner = json.loads(claim.read_text()).get("run_dir") if claim.exists() else None
        except (OSError, ValueError):
            owner = None
        if owner and owner != str(self.run_dir) and _root_processes(root):
            # Another run's pool lives in this root: its processes and mounts are not ours.
            self.log(f"pool: {root} is in use by the pool of {owner}; leaving it alone")
            (self.run_dir / STATE_FILE).unlink(missing_ok=True)
            return
        problems = []
        if any("condor_master" in _cmdline(pid) for pid in _root_processes(root)):
            # Graceful: the master stops its daemons, the starters their jobs. Then the rest
            # (nslcd) gets SIGTERM below.
            self.run_in_root(["condor_off", "-master", "-fast"], check=False, timeout=15)
            _wait_gone(root, 15, lambda pid: "condor" in _cmdline(pid))
        leftover = _kill_root_processes(root, self.log)
        if leftover:
            problems.append(f"processes still running in {root}: {leftover}")
        for mnt in reversed(self._mounts):
            if os.path.ismount(mnt):
                if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
                    subprocess.run(["umount", "-l", mnt], capture_output=True)
        # Anything else still mounted under the root (e.g. left by a crashed run).
        wr.unmount_all_under(root)
        still = wr._mounted_under(root)
        if still:
            problems.append(f"still mounted: {still}")
        for d in sorted(self._created_dirs, key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self._mounts, self._created_dirs = [], []
        try:
            claim = self._claim_path(root)
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
            "root": str(root),
            "run_dir": str(self.run_dir),
            "running": bool(procs),
            "processes": [f"{pid} {_cmdline(pid)}" for pid in procs],
            "mounts": wr._mounted_under(root),
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
    parser = argparse.ArgumentParser(prog="python -m condorhub.demo.pool", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="build (or reuse) the cached Debian trixie worker root")
    p_build.add_argument("--force", action="store_true", help="rebuild even if cached")
    p_up = sub.add_parser("up", help="start the pool")
    p_up.add_argument("--ldap-uri")
    p_up.add_argument("--ldap-base")
    p_up.add_argument("--home-base", help="host folder of the users' homes (same path inside)")
    p_up.add_argument("--probe-user", help="wait until this user resolves through LDAP")
    p_up.add_argument("--ldap-bind-dn", help="DN nslcd binds as (a read-only service account)")
    p_up.add_argument("--ldap-bind-password-file", help="file holding that DN's password")
    p_up.add_argument("--hub-identity", default=DEFAULT_HUB_IDENTITY)
    p_up.add_argument("--port", type=int, default=9618)
    p_up.add_argument("--gpus", type=int, default=2)
    p_up.add_argument("--no-condorhub", action="store_true", help="do not install the checkout's wheel")
    for p in (p_up, sub.add_parser("down", help="stop the pool, unmount everything"),
              sub.add_parser("status", help="show processes, mounts, slots")):
        p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR))
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        parser.error("run as root (debootstrap, chroot and mounts need it)")
    if args.cmd == "build":
        t0 = time.monotonic()
        root = wr.build_worker_root(force=args.force)
        print(f"{root}  ({time.monotonic() - t0:.1f}s)")
        return 0
    if args.cmd == "up":
        pool = HTCondorPool(args.run_dir, args.ldap_uri, args.ldap_base, args.home_base,
                            hub_identity=args.hub_identity, port=args.port, num_gpus=args.gpus,
                            probe_user=args.probe_user, install_condorhub=not args.no_condorhub,
                            ldap_bind_dn=args.ldap_bind_dn,
                            ldap_bind_password=Path(args.ldap_bind_password_file).read_text().strip()
                            if args.ldap_bind_password_file else None)
        pool.up()
        print(f"export CONDOR_CONFIG={pool.condor_config_path}")
        return 0
    run_dir = Path(args.run_dir)
    if args.cmd == "down":
        if not (run_dir / STATE_FILE).exists():
            print(f"no pool state in {run_dir}; nothing to do")
            return 0
        HTCondorPool.from_run_dir(run_dir).down()
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
