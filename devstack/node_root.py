"""The root file system of the demo/test GPU node, deployed by condorhub's own Ansible roles.

Debian 12 (bookworm, the host) has no HTCondor package; Debian 13 (trixie) packages 23.9. So the GPU
node is a trixie root in which the daemons run via ``chroot`` (:mod:`devstack.pool` runs them).
What is installed and configured in it is not written here: ``ansible-playbook ansible/site.yml`` deploys
it, with the roles ops use (condorhub_base, ldap_client, htcondor, worker_env) through the
``community.general.chroot`` connection, so the tests exercise what ops deploy. Two cached roots:

* the **base root** (``<cache>/ansible-root/<hash>``): ``debootstrap --variant=minbase trixie`` plus
  ``python3`` (Ansible's modules run on the target) and ``ca-certificates``: what a cloud image or a PXE
  install gives ops. The ``ansible`` tests copy it and deploy the whole all-in-one inventory into the copy.
* the **node root** (``<cache>/node-root/<hash>``): a copy of the base root into which
  :func:`build_node_root` applied site.yml with a one-host inventory that is central manager, submit and
  execute node (:func:`write_inventory`). Nothing secret stays in it: the pool signing key and the tokens
  minted during the build are removed (:data:`SECRETS`), so every run mints its own.

Each pool run mounts an overlay over the node root (the cached root stays untouched, and two pools, the
demo's and a test run's, can run side by side) and applies site.yml *again* with the run's settings (its
port, LDAP server, fresh signing key, the current checkout's condorhub wheel): see pool.py.

A root's hash covers everything that goes into it (:func:`node_recipe`: the base recipe, the files of the
roles it applies, condorhub's dependencies), so a changed role builds a new root. A build goes into a
temporary folder and is renamed into place only when complete. ``.deb`` files are cached in
``<cache>/apt-trixie``, pip downloads in ``<cache>/pip``.

CLI: ``python -m devstack.pool build`` (see pool.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from condorhub.schema import HTCondorSettings, default_of

__all__ = [
    "BASE_RECIPE",
    "CACHE_DIR",
    "CHROOT_CONDOR_SETTINGS",
    "HUB_ACCOUNT",
    "NODE_ROLES",
    "NodeRootError",
    "WORKER_EXTRAS",
    "WORKER_VENV",
    "ChrootMounts",
    "build_base_root",
    "build_node_root",
    "build_wheel",
    "chroot_env",
    "node_recipe",
    "node_recipe_hash",
    "node_vars",
    "unmount_all_under",
    "write_inventory",
]

SUITE = "trixie"
MIRROR = os.environ.get("CONDORHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")

#: The single-user environment batchspawner starts inside the HTCondor job: the schema's default, which
#: is the worker_env role's default too (tests/test_drift.py).
WORKER_VENV = str(default_of(HTCondorSettings, "server_venv"))
#: Local system account behind the hub's HTCondor identity (htcondor role's default).
HUB_ACCOUNT = "condorhub"
#: The roles site.yml applies to a host that is central manager, submit and execute node (and no hub).
NODE_ROLES = ("condorhub_base", "ldap_client", "htcondor", "worker_env")
#: Minted during a build, removed before the root is cached: each run mints its own.
SECRETS = ("etc/condor/passwords.d", "etc/condor/tokens.d", "etc/condorhub/hub.token")
#: Where the host's CA bundle goes inside a root, for pip (a site may intercept TLS with its own CA).
ROOT_CA = "/root/.condorhub-host-ca.crt"

#: Bump when the base root's build steps change.
BASE_RECIPE = {
    "version": 1,
    "suite": SUITE,
    "variant": "minbase",
    # python3: Ansible's modules run on the target (every Debian cloud image has it);
    # ca-certificates: apt and pip over https, as on a real machine.
    "include": ["python3", "ca-certificates"],
}
#: Bump when the node root's build steps (not the roles: their files are hashed) change.
NODE_RECIPE_VERSION = 1
#: Extras of the condorhub wheel in the node's worker environment (worker_env_condorhub_extras): the course
#: stack (TensorFlow CPU/GPU, uproot, scikit-learn, ...), so the course notebooks and a scan submitted from
#: notebook 03 run in HTCondor servers and jobs as on a production GPU node. One root for the demo and the
#: tests: it costs the one build (cached), and tests and demo then run the same node.
WORKER_EXTRAS: tuple[str, ...] = ("course",)

#: htcondor_extra_config for a node that is a chroot on a shared machine, with a quick turnaround for
#: tests and the demo (production keeps HTCondor's defaults).
CHROOT_CONDOR_SETTINGS = {
    # loopback only: no IPv6 listener on the machine's other addresses
    "ENABLE_IPV6": "False",
    # The master would otherwise retune the *host's* kernel (pid_max, port range, dirty bytes...).
    "ENABLE_KERNEL_TUNING": "False",
    # This sandbox refuses unshare(): no per-job mount or pid namespaces.
    "MOUNT_UNDER_SCRATCH": "",
    "USE_PID_NAMESPACES": "False",
    "NEGOTIATOR_INTERVAL": "2",
    "NEGOTIATOR_MIN_INTERVAL": "1",
    "NEGOTIATOR_CYCLE_DELAY": "1",
    "SCHEDD_INTERVAL": "5",
    "UPDATE_INTERVAL": "5",
    "STARTER_UPDATE_INTERVAL": "5",
    "JOB_START_DELAY": "0",
}


def _default_cache_dir() -> Path:
    return Path(os.environ.get("CONDORHUB_CACHE_DIR", "/var/cache/condorhub"))


CACHE_DIR = _default_cache_dir()


def _source_checkout() -> Path:
    """The condorhub checkout the node's wheel and roles come from.

    ``$CONDORHUB_SOURCE`` when set (setup.sh sets it to the checkout it installs from); otherwise the
    checkout this module lives in: devstack/ is not packaged, it only ever runs from a checkout.
    """
    if os.environ.get("CONDORHUB_SOURCE"):
        return Path(os.environ["CONDORHUB_SOURCE"]).resolve()
    return Path(__file__).resolve().parents[1]


REPO_DIR = _source_checkout()


class NodeRootError(RuntimeError):
    """Building a root failed; the message says which step and shows its output."""


Log = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- helpers


def chroot_env(**extra: str) -> dict[str, str]:
    """A clean environment for commands run inside a root (nothing of the host's leaks in: the host's
    pip configuration points at folders the root does not have)."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    env.update(extra)
    return env


def _run(cmd: Sequence[str], *, step: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    try:
        proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise NodeRootError(f"{step}: timed out after {timeout:.0f}s: {' '.join(map(str, cmd))}") from exc
    if proc.returncode != 0:
        raise NodeRootError(f"{step}: `{' '.join(map(str, cmd))}` exited {proc.returncode}:\n"
                            f"{(proc.stdout + proc.stderr)[-4000:]}")
    return proc.stdout


def _mountinfo() -> list[list[str]]:
    with open("/proc/self/mountinfo") as fh:
        return [line.split() for line in fh]


def mounted_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first), from /proc/self/mountinfo."""
    prefix = str(path).rstrip("/")
    found = [f[4].replace("\\040", " ") for f in _mountinfo()]
    return sorted((m for m in found if m == prefix or m.startswith(prefix + "/")), key=len, reverse=True)


def used_as_overlay_lower(path: Path) -> bool:
    """Whether a mounted overlay reads from ``path`` (a pool runs on it: never remove it then)."""
    needle = f"lowerdir={str(path).rstrip('/')}"
    return any(needle in line[-1] for line in _mountinfo() if "overlay" in line)


def unmount_all_under(path: Path) -> list[str]:
    """Unmount everything at or below ``path``; lazily if a plain umount fails. Returns what it unmounted."""
    done = []
    for _ in range(5):
        mounts = mounted_under(path)
        if not mounts:
            break
        for mnt in mounts:
            if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True)
            done.append(mnt)
    return done


def _ensure_debootstrap(log: Log) -> None:
    if shutil.which("debootstrap") and Path("/usr/share/debootstrap/scripts", SUITE).exists():
        return
    log("  debootstrap missing (or too old for trixie): apt-get install debootstrap")
    _run(["apt-get", "update", "-q"], step="apt-get update (host)")
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"],
         step="apt-get install debootstrap (host)", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ChrootMounts:
    """What a running system needs inside a root, and what apt and pip need to work in it.

    ``/proc``, ``/dev`` (+ ``/dev/pts``, a fresh ``/dev/shm``), a tmpfs on ``/run``, the host's pip cache
    at its host path, the host's resolver and CA bundle; optionally the cached trixie ``.deb`` files
    hard-linked into the root's own apt archives (not a bind mount: apt locks that folder, and another
    root may be installing from the shared cache at the same moment), linked back at :meth:`release`.
    Further bind mounts with :meth:`bind`. :meth:`release` undoes all mounts.
    """

    def __init__(self, root: Path, cache_dir: Path = CACHE_DIR, *, link_debs: bool = False):
        self.root = Path(root)
        self.cache_dir = Path(cache_dir)
        self.apt_cache = self.cache_dir / f"apt-{SUITE}" / "archives" if link_debs else None
        self.mounts: list[str] = []

    def _mount(self, args: Sequence[str], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        _run(["mount", *args, str(target)], step=f"mount {target}")
        self.mounts.append(str(target))

    def bind(self, source: Path, target_in_root: str | Path) -> Path:
        target = self.root / str(target_in_root).lstrip("/")
        if Path(source).is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch(exist_ok=True)
        self._mount(["--bind", str(source)], target)
        return target

    def setup(self) -> ChrootMounts:
        root = self.root
        self._mount(["-t", "proc", "proc"], root / "proc")
        self._mount(["--bind", "/dev"], root / "dev")
        if Path("/dev/pts").is_mount():
            self._mount(["--bind", "/dev/pts"], root / "dev/pts")
        self._mount(["-t", "tmpfs", "-o", "mode=1777,size=1g", "tmpfs"], root / "dev/shm")
        self._mount(["-t", "tmpfs", "-o", "mode=755,size=64m", "tmpfs"], root / "run")
        (root / "run/lock").mkdir(mode=0o1777, exist_ok=True)
        pip_cache = self.cache_dir / "pip"
        pip_cache.mkdir(parents=True, exist_ok=True)
        self.bind(pip_cache, pip_cache)
        if self.apt_cache is not None:
            archives = root / "var/cache/apt/archives"
            (archives / "partial").mkdir(parents=True, exist_ok=True)
            self.apt_cache.mkdir(parents=True, exist_ok=True)
            for deb in self.apt_cache.glob("*.deb"):
                if not (archives / deb.name).exists():
                    os.link(deb, archives / deb.name)
        # Name resolution and the host's CA bundle for apt and pip inside the root.
        resolv = root / "etc/resolv.conf"
        if resolv.is_symlink():
            resolv.unlink()
        shutil.copy("/etc/resolv.conf", resolv)
        shutil.copy(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt", root / ROOT_CA.lstrip("/"))
        hosts = root / "etc/hosts"
        hosts.write_text(f"127.0.0.1 localhost\n127.0.1.1 {socket.gethostname()}\n")
        return self

    def release(self) -> list[str]:
        """Undo the mounts (and link new .debs back into the cache). Returns what is still mounted."""
        if self.apt_cache is not None:
            for deb in (self.root / "var/cache/apt/archives").glob("*.deb"):
                with contextlib.suppress(OSError):
                    if not (self.apt_cache / deb.name).exists():
                        os.link(deb, self.apt_cache / deb.name)
        # (not os.path.ismount: it misses bind mounts within one file system)
        for mnt in reversed(self.mounts):
            if mnt in mounted_under(Path(mnt)) and subprocess.run(["umount", mnt], capture_output=True).returncode:
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        self.mounts = []
        return [m for m in mounted_under(self.root) if m != str(self.root)]


def pip_environment(cache_dir: Path = CACHE_DIR) -> dict[str, str]:
    """condorhub_pip_environment for a root set up by :class:`ChrootMounts`."""
    return {"PIP_CACHE_DIR": str(Path(cache_dir) / "pip"), "PIP_CERT": ROOT_CA,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_DEFAULT_TIMEOUT": "180"}


def build_wheel(dest: Path, repo: Path = REPO_DIR, cache_dir: Path = CACHE_DIR) -> Path:
    """condorhub's wheel from the checkout (what ops build for a release: ``pip wheel --no-deps``)."""
    if not (Path(repo) / "pyproject.toml").is_file():
        raise NodeRootError(f"{repo} is not a condorhub checkout (no pyproject.toml); set CONDORHUB_SOURCE to "
                            "the checkout condorhub was installed from (setup.sh does)")
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("condorhub-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="condorhub-wheel-") as tmp:
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(repo)],
             step=f"pip wheel {repo}", timeout=600,
             env={**os.environ, "TMPDIR": tmp, "PIP_CACHE_DIR": str(Path(cache_dir) / "pip"),
                  "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    wheels = sorted(dest.glob("condorhub-*.whl"))
    if not wheels:
        raise NodeRootError(f"pip wheel left no condorhub wheel in {dest}")
    return wheels[-1]


# --------------------------------------------------------------------------------- base root


def base_recipe_hash() -> str:
    return hashlib.sha256(json.dumps(BASE_RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def build_base_root(cache_dir: Path = CACHE_DIR, log: Log = _print) -> Path:
    """The cached bare Debian 13 root (built on first use, ~2 min; then reused)."""
    cache_dir = Path(cache_dir)
    roots = cache_dir / "ansible-root"
    final = roots / base_recipe_hash()
    marker = final / ".condorhub-root-complete"
    if marker.exists():
        return final
    with _locked(roots / ".build.lock"):
        if marker.exists():
            return final
        for stale in roots.glob(".tmp-*"):
            unmount_all_under(stale)
            shutil.rmtree(stale, ignore_errors=True)
        apt_cache = cache_dir / f"apt-{SUITE}" / "archives"
        (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
        _ensure_debootstrap(log)
        tmp = roots / f".tmp-{base_recipe_hash()}-{os.getpid()}"
        t0 = time.monotonic()
        log(f"base root: debootstrap {SUITE} into {tmp}")
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_RECIPE['include'])}",
                  f"--cache-dir={apt_cache}", SUITE, str(tmp), MIRROR],
                 step="debootstrap", env={**os.environ, "LANG": "C"})
            # A chroot has no init system: package scripts must not start daemons (they would bind
            # the host's ports, e.g. slapd on 389). Debian's documented way is policy-rc.d.
            policy = tmp / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\n# condorhub root: no init system, whoever runs it starts daemons\nexit 101\n")
            policy.chmod(0o755)
            # Keep downloaded .debs (linked back into the shared cache); no recommends, as on minimal nodes.
            (tmp / "etc/apt/apt.conf.d/90condorhub").write_text(
                'Binary::apt::APT::Keep-Downloaded-Packages "true";\nAPT::Keep-Downloaded-Packages "true";\n')
            (tmp / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
            (tmp / ".condorhub-root-complete").write_text(
                json.dumps({"recipe": BASE_RECIPE, "built": time.strftime("%F %T")}) + "\n")
            tmp.rename(final)
        except BaseException:
            unmount_all_under(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"base root: built in {time.monotonic() - t0:.0f}s -> {final}")
        return final


# --------------------------------------------------------------------------------- inventory


def node_vars(
    *,
    root: Path,
    wheel: Path,
    port: int,
    ldap_uri: str,
    ldap_base: str,
    ldap_bind_dn: str | None,
    ldap_bind_password: str | None,
    signing_key: str,
    domain: str,
    hub_identity: str,
    num_gpus: int,
    num_cpus: int,
    group_quotas: dict[str, float] | None = None,
    cache_dir: Path = CACHE_DIR,
) -> dict:
    """Inventory variables of the one-host pool: central manager, submit and execute node on loopback.

    What differs from a production inventory, and why: the chroot connection and no init system (the
    pool starts the rendered start scripts); simulated GPUs; plain LDAP to the test directory on loopback
    (no StartTLS: the test slapd has no certificate); :data:`CHROOT_CONDOR_SETTINGS`. The worker environment
    has the course stack (:data:`WORKER_EXTRAS`), as the role's default.
    """
    return {
        "ansible_connection": "community.general.chroot",
        "ansible_host": str(root),
        "ansible_become": False,  # the chroot connection is root already; the root has no sudo
        "ansible_python_interpreter": "/usr/bin/python3",
        "condorhub_service_manager": "none",
        "condorhub_domain": domain,
        "condorhub_wheel": str(wheel),
        "condorhub_pip_environment": pip_environment(cache_dir),
        "condorhub_ldap_uri": ldap_uri,
        "condorhub_ldap_base": ldap_base,
        "ldap_client_bind_dn": ldap_bind_dn or "",
        "ldap_client_bind_password": ldap_bind_password or "",
        "ldap_client_starttls": False,
        "condorhub_condor_central_manager": "127.0.0.1",
        "condorhub_condor_signing_key": signing_key,
        "condorhub_accounting_group_quotas": dict(group_quotas or {}),
        "htcondor_network_interface": "127.0.0.1",
        "htcondor_port": port,
        "htcondor_hub_identity": hub_identity,
        "htcondor_gpu_discovery_extra": f"-simulate:0,{num_gpus}",
        "htcondor_num_cpus": num_cpus,
        "htcondor_extra_config": dict(CHROOT_CONDOR_SETTINGS),
        "worker_env_condorhub_extras": list(WORKER_EXTRAS),
    }


def write_inventory(folder: Path, variables: dict, host: str = "gpu-node") -> Path:
    """A one-host inventory: ``host`` is central manager, submit and execute node; no directory, NFS or
    hub (the groups site.yml's other plays target stay empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "group_vars").mkdir(exist_ok=True)
    groups = ("condor_central_manager", "condor_submit", "condor_execute")
    inventory = {"all": {"hosts": {host: None}, "children": {g: {"hosts": {host: None}} for g in groups}}}
    (folder / "hosts.yml").write_text(json.dumps(inventory, indent=2) + "\n")  # JSON is YAML
    path = folder / "group_vars" / "all.yml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the signing key
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(variables, indent=2) + "\n")
    return folder


# --------------------------------------------------------------------------------- node root


def _files_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()
                                                       and "__pycache__" not in p.parts)
        for path in files:
            digest.update(str(path.relative_to(base.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _condorhub_dependencies(repo: Path, extras: Sequence[str] = WORKER_EXTRAS) -> list[str]:
    """condorhub's dependencies and those of ``extras`` (one level of ``condorhub[...]`` self-references
    followed: `course` pulls in `data`), as pyproject.toml lists them."""
    import tomllib

    pyproject = repo / "pyproject.toml"
    if not pyproject.exists():
        return []
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    optional = project.get("optional-dependencies", {})
    wanted, seen = list(extras), set()
    found = list(project.get("dependencies", []))
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for dep in optional.get(extra, []):
            if dep.replace(" ", "").startswith("condorhub["):
                wanted += dep.split("[", 1)[1].split("]", 1)[0].split(",")
            else:
                found.append(dep)
    return sorted(set(found))


def node_recipe(repo: Path = REPO_DIR) -> dict:
    """Everything that determines the node root's content; its hash names the cached root."""
    ansible = repo / "ansible"
    return {
        "version": NODE_RECIPE_VERSION,
        "base": base_recipe_hash(),
        "roles": list(NODE_ROLES),
        "ansible_files": _files_digest([ansible / "site.yml", ansible / "ansible.cfg",
                                        *(ansible / "roles" / r for r in NODE_ROLES)]),
        # the worker environment installs condorhub's dependencies (and its extras') from the wheel's metadata
        "worker_extras": list(WORKER_EXTRAS),
        "condorhub_dependencies": _condorhub_dependencies(repo),
    }


def node_recipe_hash(repo: Path = REPO_DIR) -> str:
    return hashlib.sha256(json.dumps(node_recipe(repo), sort_keys=True).encode()).hexdigest()[:16]


def cached_node_root(cache_dir: Path | None = None, repo: Path = REPO_DIR) -> Path | None:
    """The complete cached node root for the current recipe, or None if it has not been built."""
    root = Path(cache_dir or CACHE_DIR) / "node-root" / node_recipe_hash(repo)
    return root if (root / ".condorhub-root-complete").exists() else None


def build_node_root(cache_dir: Path | None = None, *, force: bool = False, repo: Path = REPO_DIR,
                    log: Log = _print) -> Path:
    """The cached node root for the current recipe, built first if needed (~3 min).

    Concurrent callers wait on a lock; the loser of a race finds the finished root. ``force`` rebuilds
    even if a complete root exists (the old one is replaced; one a running pool reads is kept).
    """
    from devstack.playbook import run_playbook

    cache_dir = Path(cache_dir or CACHE_DIR)
    roots = cache_dir / "node-root"
    digest = node_recipe_hash(repo)
    final = roots / digest
    marker = ".condorhub-root-complete"
    if not force and (final / marker).exists():
        return final
    base = build_base_root(cache_dir, log)
    with _locked(roots / ".build.lock"):
        if not force and (final / marker).exists():
            return final
        t0 = time.monotonic()
        for stale in roots.glob(".tmp-*"):
            log(f"  removing interrupted build {stale}")
            unmount_all_under(stale)
            shutil.rmtree(stale, ignore_errors=True)
        work = roots / f".tmp-{digest}-{os.getpid()}"
        tmp = work / "root"
        log(f"node root: ansible-playbook site.yml into {tmp} (recipe {digest}; cached afterwards)")
        mounts = None
        try:
            work.mkdir(parents=True)
            _run(["cp", "-a", "--reflink=auto", str(base), str(tmp)], step="copy the base root")
            (tmp / ".condorhub-root-complete").unlink()
            mounts = ChrootMounts(tmp, cache_dir, link_debs=True).setup()
            wheel = build_wheel(work / "dist", repo, cache_dir)
            # Placeholders where a run has its own values (port, directory, key): every run re-applies.
            inventory = write_inventory(work / "inventory", node_vars(
                root=tmp, wheel=wheel, port=9618, ldap_uri="ldap://127.0.0.1", ldap_base="dc=condorhub,dc=test",
                ldap_bind_dn=None, ldap_bind_password=None, signing_key=os.urandom(24).hex(),
                domain="condorhub.test", hub_identity="condorhub@condorhub.test", num_gpus=2, num_cpus=4,
                cache_dir=cache_dir))
            run = run_playbook(repo / "ansible", inventory, work / "ansible-build.log",
                               progress=lambda task: log(f"  ansible: {task}"))
            if run.rc != 0:
                raise NodeRootError(f"ansible-playbook site.yml into the node root failed (rc {run.rc}; "
                                    f"log {run.log}):\n{run.output[-5000:]}")
            left = mounts.release()
            mounts = None
            if left:
                raise NodeRootError(f"still mounted in the node root after the build: {left}")
            # Nothing secret and nothing of this host's in the cache.
            for rel in SECRETS:
                path = tmp / rel
                if path.is_dir():
                    for item in path.iterdir():
                        item.unlink()
                else:
                    path.unlink(missing_ok=True)
            for rel in ("etc/resolv.conf", ROOT_CA.lstrip("/")):
                (tmp / rel).unlink(missing_ok=True)
            shutil.rmtree(tmp / "var/cache/apt/archives", ignore_errors=True)
            (tmp / "var/cache/apt/archives/partial").mkdir(parents=True)
            (tmp / marker).write_text(json.dumps({"recipe": node_recipe(repo), "hash": digest,
                                                  "built": time.strftime("%F %T"),
                                                  "seconds": round(time.monotonic() - t0)}, indent=2) + "\n")
            if final.exists():
                old = roots / f".old-{digest}-{os.getpid()}"
                final.rename(old)
                tmp.rename(final)
                if not used_as_overlay_lower(old):
                    shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(final)
            shutil.copy(run.log, roots / f"{digest}.ansible.log")
        except BaseException:
            if mounts is not None:
                mounts.release()
            unmount_all_under(work)
            shutil.rmtree(work, ignore_errors=True)
            raise
        shutil.rmtree(work, ignore_errors=True)
        log(f"node root: built in {time.monotonic() - t0:.0f}s -> {final}")
        _prune_old_roots(roots, keep=final, log=log)
        return final


def _prune_old_roots(roots: Path, keep: Path, log: Log, keep_others: int = 1) -> None:
    """Remove roots of older recipes, except the newest ``keep_others`` and any a running pool reads."""
    others = [d for d in roots.iterdir() if d.is_dir() and not d.name.startswith(".") and d != keep]
    others.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in others[keep_others:]:
        if used_as_overlay_lower(old) or mounted_under(old):
            continue
        log(f"  removing the root of an older recipe: {old}")
        shutil.rmtree(old, ignore_errors=True)
        (roots / f"{old.name}.ansible.log").unlink(missing_ok=True)
