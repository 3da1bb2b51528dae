"""Fixtures for the ``ansible`` tests: a fresh Debian 13 root per run that ``ansible-playbook`` deploys into.

What ops get from a cloud or a PXE install is a bare Debian with Python; the closest thing on this machine
is the *base root* of :mod:`devstack.node_root` (``debootstrap --variant=minbase trixie`` plus
``python3``, cached). Every test run copies it (``cp -a``) into a scratch folder, so each apply starts from
the same bare system and nothing a run installs leaks into the next.

Inside the copy, for the run: what :class:`devstack.node_root.ChrootMounts` provides (``/proc``,
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
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import node_root as nr
from devstack.directory import DEMO_USERS
from devstack.pool import _kill_root_processes, _root_processes

from .hub import HubClient

REPO = Path(__file__).resolve().parents[2]
#: jupyterhub_profiles of the deployments the tests make: the login node for everyone, one GPU for most.
TEST_PROFILES = [
    {"slug": "login-node", "kind": "login_node", "display_name": "Login node",
     "roles": ["student", "researcher", "instructor", "guest", "admin"]},
    {"slug": "gpu-1", "kind": "condor", "display_name": "1 GPU", "roles": ["student", "researcher", "instructor", "admin"],
     "cpus": 1, "memory": "1G", "runtime": "1h", "gpus": 1},
]
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


def in_root(root: Path, *cmd: str, user: str | None = None, timeout: float = 60, check: bool = True):
    argv = list(cmd) if user is None else ["/usr/sbin/runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(["chroot", str(root), *argv], env=nr.chroot_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, f"in the root: {' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc


def wait_for_pool(root: Path, gpus: int = 2, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        slots = in_root(root, "condor_status", "-af", "Name", "TotalSlotGPUs", check=False, timeout=20)
        total = sum(int(f[1]) for f in (line.split() for line in slots.stdout.splitlines())
                    if len(f) >= 2 and f[1].isdigit())
        schedd = in_root(root, "condor_q", "-totals", check=False, timeout=20)
        if total >= gpus and schedd.returncode == 0:
            return slots.stdout
        if time.monotonic() > deadline:
            log = root / "var/log/condor"
            tails = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                              for p in sorted(log.glob("*Log")) if p.is_file())
            raise AssertionError(f"the pool the playbook configured did not come up with {gpus} GPUs:\n"
                                 f"{slots.stdout}{slots.stderr}\n{schedd.stderr}\n{tails}")
        time.sleep(1)


def wait_for_user(root: Path, user: str, workdir: Path, timeout: float = 30) -> None:
    """LDAP users resolve through nslcd (StartTLS to the playbook's slapd, bound as cn=nslcd)."""
    deadline = time.monotonic() + timeout
    while in_root(root, "getent", "passwd", user, check=False).returncode != 0:
        if time.monotonic() > deadline:
            logs = {p.name: p.read_text(errors="replace")[-1500:] for p in workdir.glob("*-slapd.log")}
            logs |= {p.name: p.read_text(errors="replace")[-1500:] for p in workdir.glob("*-nslcd.log")}
            raise AssertionError(f"{user} does not resolve through NSS (nslcd -> slapd) in the root:\n{logs}")
        time.sleep(0.5)


def keep_logs(workdir: Path, name: str) -> None:
    """The playbook runs' and the daemons' logs, for a look after the run (test-artifacts/<name>/)."""
    dest = REPO / "test-artifacts" / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for log in workdir.glob("*.log"):
        shutil.copy(log, dest / log.name)


def process_uid(pid: int) -> int | None:
    try:
        return Path(f"/proc/{pid}").stat().st_uid
    except OSError:
        return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def alice_starts_a_gpu_server(url: str, certificate: Path) -> HubClient:
    """alice logs in at the hub the playbook installed (over HTTPS, trusting only the certificate it made) and
    starts the 1-GPU profile; returns her client once the server runs."""
    client = HubClient(url)
    client.http.verify = str(certificate)
    # ... also not a CA bundle from the environment (requests lets REQUESTS_CA_BUNDLE override `verify`).
    client.http.trust_env = False
    alice = next(u for u in DEMO_USERS if u.uid == "alice")
    page = client.login("alice", alice.password, follow=False)
    assert client.logged_in_as() == "alice", f"login failed: {page.status_code} {page.text[:500]}"
    client.spawn_form({"profile": "gpu-1"})
    status = client.wait_for_server("alice", timeout=240)
    assert status.get("started"), status
    return client


@pytest.fixture(scope="session")
def ansible_base_root() -> Path:
    if os.geteuid() != 0:
        pytest.fail("the ansible tests need root (debootstrap, chroot, mounts): run them through ./setup.sh test")
    return nr.build_base_root()
