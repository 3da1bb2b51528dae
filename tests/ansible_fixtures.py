"""Fixtures for the ``ansible`` tests: a fresh Debian 13 root per run that ``ansible-playbook`` deploys into.

What ops get from a cloud or a PXE install is a bare Debian with Python; the closest thing on this machine
is the *base root* of :mod:`condorhub.demo.node_root` (``debootstrap --variant=minbase trixie`` plus
``python3``, cached). Every test run copies it (``cp -a``) into a scratch folder, so each apply starts from
the same bare system and nothing a run installs leaks into the next.

Inside the copy, for the run: what :class:`condorhub.demo.node_root.ChrootMounts` provides (``/proc``,
``/dev``, a tmpfs on ``/run``, the cached trixie ``.deb`` files hard-linked into its apt archives, the pip
cache, the host's resolver and CA bundle). ``policy-rc.d`` (exit 101) keeps package scripts from starting
daemons: the root has no systemd, the roles run with ``condorhub_service_manager: none``, and the test
starts the daemons from the scripts the roles rendered. Teardown kills every process whose root is the
copy, unmounts everything under it and removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from condorhub.demo import node_root as nr
from condorhub.demo.pool import _kill_root_processes, _root_processes

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_DIR = REPO / "ansible"
CACHE_DIR = nr.CACHE_DIR


class TargetRoot:
    """A per-run copy of the base root, with the mounts a running system needs."""

    def __init__(self, base: Path, workdir: Path):
        self.base = base
        self.workdir = workdir
        self.path = workdir / "root"
        self.mounts: nr.ChrootMounts | None = None

    def create(self) -> TargetRoot:
        t0 = time.monotonic()
        subprocess.run(["cp", "-a", "--reflink=auto", str(self.base), str(self.path)], check=True)
        self.copy_seconds = time.monotonic() - t0
        self.mounts = nr.ChrootMounts(self.path, CACHE_DIR, link_debs=True).setup()
        return self

    def destroy(self) -> list[str]:
        """Stop everything running in the root, unmount, remove. Returns problems (empty when clean)."""
        problems = []
        left = _kill_root_processes(self.path, lambda msg: None)
        if left:
            problems.append(f"processes still running in {self.path}: {left}")
        if self.mounts is not None:
            self.mounts.release()
        nr.unmount_all_under(self.path)
        still = nr.mounted_under(self.path)
        if still:
            problems.append(f"still mounted: {still}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    def processes(self) -> list[int]:
        return _root_processes(self.path)


@contextlib.contextmanager
def target_root() -> Iterator[TargetRoot]:
    base = nr.build_base_root()
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
    return nr.build_base_root()
