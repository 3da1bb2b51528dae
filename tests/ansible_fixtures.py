"""Fixtures for the ``ansible`` tests: a fresh Debian 13 root per run that ``ansible-playbook`` deploys into.

What ops get from a cloud or a PXE install is a bare Debian with Python; the closest thing on this machine
is a ``debootstrap --variant=minbase trixie`` root plus ``python3`` (Ansible's modules need it). That *base*
root is built once and cached under ``/var/cache/condorhub/ansible-root/<recipe-hash>`` (same locking,
temporary-folder-then-rename and apt ``.deb`` cache as :mod:`condorhub.demo.worker_root`); every test run
copies it (``cp -a``) into a scratch folder, so each apply starts from the same bare system and nothing a
run installs leaks into the next.

Inside the copy, for the run: ``/proc``, ``/dev`` (+ ``/dev/pts``, a fresh ``/dev/shm``), a tmpfs on
``/run``, the cached trixie ``.deb`` files hard-linked into its apt archives (new ones are linked back at
teardown), and the host's pip and npm caches bind-mounted at their host paths. ``policy-rc.d`` (exit 101) keeps package
scripts from starting daemons: the root has no systemd, the roles run with
``condorhub_service_manager: none``, and the test starts the daemons from the scripts the roles rendered.
Teardown kills every process whose root is the copy, unmounts everything under it and removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from condorhub.demo import worker_root as wr
from condorhub.demo.pool import _kill_root_processes, _root_processes

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_DIR = REPO / "ansible"
CACHE_DIR = wr.CACHE_DIR

#: Bump when the base root's build steps change.
BASE_RECIPE = {
    "version": 1,
    "suite": wr.SUITE,
    "variant": "minbase",
    # python3: Ansible's modules run on the target (every Debian cloud image has it);
    # ca-certificates: apt and pip over https, as on a real machine.
    "include": ["python3", "ca-certificates"],
}


def base_recipe_hash() -> str:
    return hashlib.sha256(json.dumps(BASE_RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def _run(cmd, *, step: str, timeout: float = 1800, env=None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{step}: timed out after {timeout:.0f}s: {' '.join(map(str, cmd))}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"{step}: `{' '.join(map(str, cmd))}` exited {proc.returncode}:\n"
                           f"{(proc.stdout + proc.stderr)[-4000:]}")
    return proc.stdout


def build_base_root(cache_dir: Path = CACHE_DIR, log=print) -> Path:
    """The cached bare Debian 13 root (built on first use, ~2 min; then reused)."""
    roots = cache_dir / "ansible-root"
    final = roots / base_recipe_hash()
    marker = final / ".condorhub-root-complete"
    if marker.exists():
        return final
    with wr._locked(roots / ".build.lock"):
        if marker.exists():
            return final
        for stale in roots.glob(".tmp-*"):
            wr.unmount_all_under(stale)
            shutil.rmtree(stale, ignore_errors=True)
        apt_cache = cache_dir / f"apt-{wr.SUITE}" / "archives"
        (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
        wr._ensure_debootstrap(log)
        tmp = roots / f".tmp-{base_recipe_hash()}-{os.getpid()}"
        t0 = time.monotonic()
        log(f"ansible base root: debootstrap {wr.SUITE} into {tmp}")
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_RECIPE['include'])}",
                  f"--cache-dir={apt_cache}", wr.SUITE, str(tmp), wr.MIRROR],
                 step="debootstrap", env={**os.environ, "LANG": "C"})
            # A chroot has no init system: package scripts must not start daemons (they would bind
            # the host's ports, e.g. slapd on 389). Debian's documented way is policy-rc.d.
            policy = tmp / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\n# condorhub test root: no init system, the test starts daemons\nexit 101\n")
            policy.chmod(0o755)
            # Keep downloaded .debs: /var/cache/apt/archives is the shared cache during runs.
            (tmp / "etc/apt/apt.conf.d/90condorhub").write_text(
                'Binary::apt::APT::Keep-Downloaded-Packages "true";\nAPT::Keep-Downloaded-Packages "true";\n')
            (tmp / "etc/apt/sources.list").write_text(f"deb {wr.MIRROR} {wr.SUITE} main\n")
            marker_tmp = tmp / ".condorhub-root-complete"
            marker_tmp.write_text(json.dumps({"recipe": BASE_RECIPE, "built": time.strftime("%F %T")}) + "\n")
            tmp.rename(final)
        except BaseException:
            wr.unmount_all_under(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"ansible base root: built in {time.monotonic() - t0:.0f}s -> {final}")
        return final


class TargetRoot:
    """A per-run copy of the base root, with the mounts a running system needs."""

    def __init__(self, base: Path, workdir: Path):
        self.base = base
        self.workdir = workdir
        self.path = workdir / "root"
        self.mounts: list[Path] = []

    def _mount(self, args: list[str], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        _run(["mount", *args, str(target)], step=f"mount {target}")
        self.mounts.append(target)

    def create(self) -> TargetRoot:
        t0 = time.monotonic()
        _run(["cp", "-a", "--reflink=auto", str(self.base), str(self.path)], step="copy the base root")
        self.copy_seconds = time.monotonic() - t0
        root = self.path
        self._mount(["-t", "proc", "proc"], root / "proc")
        self._mount(["--bind", "/dev"], root / "dev")
        if Path("/dev/pts").is_mount():
            self._mount(["--bind", "/dev/pts"], root / "dev/pts")
        self._mount(["-t", "tmpfs", "-o", "mode=1777,size=512m", "tmpfs"], root / "dev/shm")
        self._mount(["-t", "tmpfs", "-o", "mode=755,size=64m", "tmpfs"], root / "run")
        (root / "run/lock").mkdir(mode=0o1777, exist_ok=True)
        # Download caches at the host's paths (the test's extra vars point pip and npm at them).
        for cache in (CACHE_DIR / "pip", CACHE_DIR / "npm"):
            cache.mkdir(parents=True, exist_ok=True)
        # The .deb cache: hard links into the root's own archives folder (not a bind mount: apt locks that
        # folder, and the HTCondor pool's root build may be using the shared one at the same moment);
        # what the run downloads is linked back at teardown.
        self.apt_cache = CACHE_DIR / f"apt-{wr.SUITE}" / "archives"
        archives = root / "var/cache/apt/archives"
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        for deb in self.apt_cache.glob("*.deb"):
            if not (archives / deb.name).exists():
                os.link(deb, archives / deb.name)
        self._mount(["--bind", str(CACHE_DIR / "pip")], root / str(CACHE_DIR / "pip").lstrip("/"))
        self._mount(["--bind", str(CACHE_DIR / "npm")], root / str(CACHE_DIR / "npm").lstrip("/"))
        # Name resolution and the host's CA bundle (a site may intercept TLS with its own CA) for apt,
        # pip and npm inside the root.
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        hostname = socket.gethostname()
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n")
        return self

    def destroy(self) -> list[str]:
        """Stop everything running in the root, unmount, remove. Returns problems (empty when clean)."""
        problems = []
        archives = self.path / "var/cache/apt/archives"
        for deb in archives.glob("*.deb") if getattr(self, "apt_cache", None) else []:
            with contextlib.suppress(OSError):
                if not (self.apt_cache / deb.name).exists():
                    os.link(deb, self.apt_cache / deb.name)
        left = _kill_root_processes(self.path, lambda msg: None)
        if left:
            problems.append(f"processes still running in {self.path}: {left}")
        for mnt in reversed(self.mounts):
            if os.path.ismount(mnt) and subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        wr.unmount_all_under(self.path)
        still = wr._mounted_under(self.path)
        if still:
            problems.append(f"still mounted: {still}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    def processes(self) -> list[int]:
        return _root_processes(self.path)


@contextlib.contextmanager
def target_root() -> Iterator[TargetRoot]:
    base = build_base_root()
    workdir = Path(tempfile.mkdtemp(prefix="condorhub-ansible-", dir="/var/tmp"))
    workdir.chmod(0o755)
    target = TargetRoot(base, workdir)
    try:
        yield target.create()
    finally:
        problems = target.destroy()
        assert not problems, f"teardown of the ansible test root left: {problems}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ansible_base_root() -> Path:
    if os.geteuid() != 0:
        pytest.fail("the ansible tests need root (debootstrap, chroot, mounts): run them through ./setup.sh test")
    return build_base_root()
