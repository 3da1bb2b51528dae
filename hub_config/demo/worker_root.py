"""The root file system of the demo/test "GPU execute node": Debian trixie with HTCondor.

Debian 12 (bookworm, the host) has no HTCondor package; Debian 13 (trixie) packages 23.9. So the
execute node is a trixie root made with ``debootstrap`` in which ``condor_master`` runs via
``chroot`` (see :mod:`condorhub.demo.pool`, which runs it). This module only *builds* the root:

* ``debootstrap --variant=minbase trixie``, then ``apt-get install`` of :data:`PACKAGES`
  (HTCondor, Python, nslcd/libnss-ldapd for LDAP users through NSS as on production nodes);
* NSS configured like production (``passwd``/``group``: ``files ldap``); ``/etc/nslcd.conf``
  is a placeholder that the pool bind-mounts over with the run's URI/base;
* a local system account ``condorhub`` (the hub's identity needs a local account on the
  schedd's machine, see pool.py), and mount points the pool uses;
* the single-user Python environment :data:`WORKER_VENV` with :data:`WORKER_REQUIREMENTS`
  plus condorhub's own runtime dependencies (read from pyproject.toml). condorhub itself is
  *not* installed here: the pool installs the current checkout's wheel at every ``up`` into a
  per-run folder (:data:`RUN_SITE`), since the code changes often and the root is cached.

The root is cached under ``<cache>/worker-root/<recipe-hash>``, the hash covering everything
that goes into it (:func:`recipe`), so a changed recipe builds a new root. A build goes into
a temporary folder next to it and is renamed into place only when complete, so an interrupted
build is never reused. ``.deb`` files are cached in ``<cache>/apt-trixie`` (debootstrap's
``--cache-dir`` and apt's archives, bind-mounted), pip downloads in ``<cache>/pip``.

CLI: ``python -m condorhub.demo.pool build`` (see pool.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "CACHE_DIR",
    "PACKAGES",
    "RECIPE_VERSION",
    "RUN_SITE",
    "POOL_STATE_DIR",
    "WORKER_VENV",
    "WorkerRootError",
    "build_worker_root",
    "cached_worker_root",
    "chroot_env",
    "recipe",
    "recipe_hash",
]

#: Bump when the build steps below change in a way the package lists do not show.
RECIPE_VERSION = 1

SUITE = "trixie"
MIRROR = os.environ.get("CONDORHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")

#: Debian packages in the execute node's root (``--no-install-recommends``).
PACKAGES = (
    "htcondor",
    "python3",
    "python3-venv",
    "nslcd",
    "libnss-ldapd",
    "ca-certificates",
    "procps",
)

#: The single-user environment batchspawner starts inside the HTCondor job.
WORKER_VENV = "/opt/condorhub/worker-venv"
#: Empty in the cached root; the pool bind-mounts the run's condorhub wheel install here, and a
#: .pth file in WORKER_VENV puts it on sys.path.
RUN_SITE = "/opt/condorhub/run-site"
#: Empty in the cached root; the pool bind-mounts the run's condor LOCAL_DIR here.
POOL_STATE_DIR = "/var/lib/condorhub-pool"
#: Empty placeholder in the cached root; the pool bind-mounts the run's condor config over it.
RUN_CONDOR_CONFIG = "/etc/condor/config.d/99-condorhub-run.config"
#: Local system account behind the hub's HTCondor identity (see pool.py).
HUB_ACCOUNT = "condorhub"

#: Third-party packages of the single-user environment (same majors as the hub's environment).
WORKER_REQUIREMENTS = (
    "jupyterhub>=6.0,<7",
    "jupyterlab>=4.2,<5",
    "jupyter-server>=2.14,<3",
    "batchspawner>=1.3,<1.4",
)


def _default_cache_dir() -> Path:
    return Path(os.environ.get("CONDORHUB_CACHE_DIR", "/var/cache/condorhub"))


CACHE_DIR = _default_cache_dir()

def _source_checkout() -> Path:
    """The condorhub checkout the worker's wheel is built from.

    ``$CONDORHUB_SOURCE`` when set (setup.sh sets it to the checkout it installs from); otherwise the
    checkout this module lives in (an editable install). A regular install lives in site-packages, which
    is no source tree: then the path returned has no pyproject.toml and building the wheel fails with a
    message saying to set CONDORHUB_SOURCE.
    """
    if os.environ.get("CONDORHUB_SOURCE"):
        return Path(os.environ["CONDORHUB_SOURCE"]).resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "hub_config").is_dir():
            return parent
    return Path(__file__).resolve().parents[2]


REPO_DIR = _source_checkout()


class WorkerRootError(RuntimeError):
    """Building the worker root failed; the message says which step and shows its output."""


Log = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- recipe


def _condorhub_dependencies(repo: Path = REPO_DIR) -> list[str]:
    """condorhub's runtime dependencies from pyproject.toml (installed in the worker venv so the
    per-run wheel can go in with --no-deps)."""
    pyproject = repo / "pyproject.toml"
    if not pyproject.exists():
        return []
    import tomllib

    data = tomllib.loads(pyproject.read_text())
    return list(data.get("project", {}).get("dependencies", []))


def recipe(repo: Path = REPO_DIR) -> dict:
    """Everything that determines the root's content; its hash names the cached root."""
    return {
        "recipe_version": RECIPE_VERSION,
        "suite": SUITE,
        "variant": "minbase",
        "packages": sorted(PACKAGES),
        "worker_venv": WORKER_VENV,
        "pip_requirements": sorted(set(WORKER_REQUIREMENTS) | set(_condorhub_dependencies(repo))),
        "hub_account": HUB_ACCOUNT,
        "mount_points": [RUN_SITE, POOL_STATE_DIR, RUN_CONDOR_CONFIG],
    }


def recipe_hash(repo: Path = REPO_DIR) -> str:
    blob = json.dumps(recipe(repo), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_worker_root(cache_dir: Path | None = None, repo: Path = REPO_DIR) -> Path | None:
    """The complete cached root for the current recipe, or None if it has not been built."""
    root = (cache_dir or _default_cache_dir()) / "worker-root" / recipe_hash(repo)
    return root if (root / ".condorhub-root-complete").exists() else None


# --------------------------------------------------------------------------------- helpers


def chroot_env(**extra: str) -> dict[str, str]:
    """A clean environment for commands run inside the root (nothing of the host's leaks in:
    the host's pip configuration points at folders the root does not have)."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    env.update(extra)
    return env


def _run(cmd: Sequence[str], *, step: str, env: dict[str, str] | None = None,
         timeout: float = 1800, input: str | None = None) -> str:
    try:
        proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True,
                              timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise WorkerRootError(f"{step}: timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise WorkerRootError(f"{step}: `{' '.join(cmd)}` exited {proc.returncode}:\n{tail}")
    return proc.stdout


def _mounted_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first), from /proc/self/mountinfo."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return sorted(found, key=len, reverse=True)


def unmount_all_under(path: Path) -> list[str]:
    """Unmount everything at or below ``path``; lazily if a plain umount fails. Returns what it
    unmounted."""
    done = []
    for _ in range(5):
        mounts = _mounted_under(path)
        if not mounts:
            break
        for mnt in mounts:
            if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True)
            done.append(mnt)
    return done


@contextlib.contextmanager
def _build_mounts(root: Path, apt_cache: Path, pip_cache: Path) -> Iterator[None]:
    """/proc, /dev, resolv.conf and the download caches inside the root while building."""
    mounts: list[Path] = []

    def bind(src: Path, dst: Path, *extra: str) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        _run(["mount", "--bind", *extra, str(src), str(dst)], step=f"mount {dst}")
        mounts.append(dst)

    try:
        (root / "proc").mkdir(exist_ok=True)
        _run(["mount", "-t", "proc", "proc", str(root / "proc")], step="mount /proc")
        mounts.append(root / "proc")
        bind(Path("/dev"), root / "dev")
        bind(apt_cache / "archives", root / "var/cache/apt/archives")
        bind(pip_cache, root / pip_cache.relative_to("/"))
        yield
    finally:
        for mnt in reversed(mounts):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        unmount_all_under(root)


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


# --------------------------------------------------------------------------------- build


def build_worker_root(cache_dir: Path | None = None, *, force: bool = False,
                      repo: Path = REPO_DIR, log: Log = _print) -> Path:
    """Return the cached root for the current recipe, building it first if needed.

    Concurrent callers wait on a lock; the loser of a race finds the finished root. ``force``
    rebuilds even if a complete root exists (the old one is replaced atomically).
    """
    cache_dir = Path(cache_dir or _default_cache_dir())
    roots = cache_dir / "worker-root"
    digest = recipe_hash(repo)
    final = roots / digest
    marker = ".condorhub-root-complete"
    if not force and (final / marker).exists():
        return final
    with _locked(roots / ".build.lock"):
        if not force and (final / marker).exists():
            return final
        t_all = time.monotonic()
        log(f"worker root: building {final} (recipe {digest}, Debian {SUITE})")
        apt_cache = cache_dir / f"apt-{SUITE}"
        (apt_cache / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        pip_cache = cache_dir / "pip"
        pip_cache.mkdir(parents=True, exist_ok=True)
        # Leftovers of interrupted builds (never complete, never used): unmount and remove.
        for stale in roots.glob(".tmp-*"):
            log(f"  removing interrupted build {stale}")
            unmount_all_under(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = roots / f".tmp-{digest}-{os.getpid()}"
        try:
            _build_into(tmp, apt_cache, pip_cache, repo, log)
            (tmp / marker).write_text(json.dumps({"recipe": recipe(repo), "hash": digest,
                                                  "built": time.strftime("%Y-%m-%dT%H:%M:%S")},
                                                 indent=2) + "\n")
            if final.exists():
                old = roots / f".old-{digest}-{os.getpid()}"
                unmount_all_under(final)
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(final)
        except BaseException:
            unmount_all_under(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"worker root: done in {time.monotonic() - t_all:.1f}s -> {final}")
        _prune_old_roots(roots, keep=final, log=log)
        return final


def _prune_old_roots(roots: Path, keep: Path, log: Log, keep_others: int = 1) -> None:
    """Remove roots of older recipes, except the newest ``keep_others`` and any in use (mounted)."""
    others = [d for d in roots.iterdir()
              if d.is_dir() and not d.name.startswith(".") and d != keep]
    others.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in others[keep_others:]:
        if _mounted_under(old):
            continue
        log(f"  removing the root of an older recipe: {old}")
        shutil.rmtree(old, ignore_errors=True)


def _build_into(root: Path, apt_cache: Path, pip_cache: Path, repo: Path, log: Log) -> None:
    def step(name: str) -> Callable[[], None]:
        t0 = time.monotonic()
        log(f"  [{time.strftime('%H:%M:%S')}] {name} ...")

        def done() -> None:
            log(f"      {name}: {time.monotonic() - t0:.1f}s")
        return done

    done = step("host: check debootstrap")
    _ensure_debootstrap(log)
    done()

    done = step(f"debootstrap --variant=minbase {SUITE}")
    root.mkdir(parents=True)
    _run(["debootstrap", "--variant=minbase", f"--cache-dir={apt_cache / 'archives'}",
          SUITE, str(root), MIRROR], step="debootstrap", env={**os.environ, "LANG": "C"})
    done()

    # Never start services inside the root while installing; keep downloaded .debs (the
    # archives folder is the shared cache); no recommends, as in production's minimal nodes.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/apt/apt.conf.d/90condorhub").write_text(
        'APT::Install-Recommends "false";\n'
        'APT::Install-Suggests "false";\n'
        'Binary::apt::APT::Keep-Downloaded-Packages "true";\n'
        'APT::Keep-Downloaded-Packages "true";\n'
    )
    (root / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    # pip inside the root must trust what the host trusts (a site may intercept TLS with its own
    # CA, which the root's ca-certificates does not know): use the host's bundle while building.
    host_ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    build_ca = "/root/.condorhub-build-ca.crt"
    shutil.copy(host_ca, root / build_ca.lstrip("/"))

    chroot = ["chroot", str(root)]
    env = chroot_env(PIP_CACHE_DIR=str(pip_cache), PIP_DISABLE_PIP_VERSION_CHECK="1",
                     PIP_DEFAULT_TIMEOUT="180", PIP_CERT=build_ca)
    with _build_mounts(root, apt_cache, pip_cache):
        done = step("apt-get update (root)")
        _run([*chroot, "apt-get", "update", "-q"], step="apt-get update", env=env)
        done()

        done = step(f"apt-get install {' '.join(PACKAGES)}")
        _run([*chroot, "apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
             step="apt-get install", env=env)
        done()

        done = step("configure NSS (files ldap), accounts, mount points")
        _configure_system(root)
        _run([*chroot, "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
              "--shell", "/usr/sbin/nologin", "--comment", "condorhub hub identity (HTCondor)",
              HUB_ACCOUNT], step="useradd condorhub", env=env)
        done()

        done = step(f"python venv {WORKER_VENV}")
        _run([*chroot, "python3", "-m", "venv", WORKER_VENV], step="python3 -m venv", env=env)
        done()

        reqs = recipe(repo)["pip_requirements"]
        done = step(f"pip install {' '.join(reqs)}")
        _run([*chroot, f"{WORKER_VENV}/bin/pip", "install", "-q", *reqs],
             step="pip install (worker venv)", env=env, timeout=3600)
        site = _run([*chroot, f"{WORKER_VENV}/bin/python", "-c",
                     "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    step="find site-packages", env=env).strip()
        (root / site.lstrip("/") / "condorhub-run-site.pth").write_text(RUN_SITE + "\n")
        freeze = _run([*chroot, f"{WORKER_VENV}/bin/pip", "freeze"], step="pip freeze", env=env)
        (root / "opt/condorhub/worker-venv.freeze.txt").write_text(freeze)
        done()

        done = step("check: condor, batchspawner-singleuser")
        version = _run([*chroot, "condor_version"], step="condor_version", env=env).splitlines()[0]
        if not (root / WORKER_VENV.lstrip("/") / "bin/batchspawner-singleuser").exists():
            raise WorkerRootError(f"{WORKER_VENV}/bin/batchspawner-singleuser is missing")
        versions = _run([*chroot, f"{WORKER_VENV}/bin/python", "-c",
                         "import importlib.metadata as m; print(' '.join(f'{p} {m.version(p)}' for p in "
                         "('jupyterhub', 'jupyterlab', 'batchspawner')))"],
                        step="worker venv versions", env=env).strip()
        log(f"      {version}; {versions}")
        done()

    # Leave no host-specific or transient state in the cached root.
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / build_ca.lstrip("/")).unlink(missing_ok=True)
    for leftover in (root / "var/lib/apt/lists").glob("*_dists_*"):
        leftover.unlink()


def _configure_system(root: Path) -> None:
    nsswitch = root / "etc/nsswitch.conf"
    lines = []
    for line in nsswitch.read_text().splitlines():
        key = line.split(":", 1)[0].strip()
        if key in ("passwd", "group"):
            line = f"{key}:{' ' * (15 - len(key))}files ldap"
        lines.append(line)
    nsswitch.write_text("\n".join(lines) + "\n")
    # Placeholder: the pool bind-mounts the run's nslcd.conf (uri/base) over it.
    (root / "etc/nslcd.conf").write_text(
        "# condorhub: replaced at run time by a bind mount from the pool's run folder\n"
        "uid nslcd\ngid nslcd\nuri ldap://127.0.0.1/\nbase dc=condorhub,dc=test\n"
    )
    for d in (RUN_SITE, POOL_STATE_DIR):
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (root / RUN_CONDOR_CONFIG.lstrip("/")).write_text(
        "# condorhub: replaced at run time by a bind mount of the pool's configuration\n"
    )
