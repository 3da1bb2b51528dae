"""TensorBoard in a Lab server that runs as an HTCondor job on the pool's (simulated) GPU node, reached
through the hub: the private folder lives in the job's scratch TMPDIR, TensorBoard (the Lab's and
%tensorboard's) listens on no TCP port of the node, and the user still reads it through their server.

The pool, hub and LDAP are the real ones of tests/test_condor_e2e.py (its module fixture ``hub``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from test_condor_e2e import hub, login, run_in_kernel, start_server, stop_server, wait_for  # noqa: F401

from devstack.samples.tensorboard import write_scalars
from tests.support.tensorboard_probe import tcp_listen_ports

pytestmark = [pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

ALICE_UID = 10001

MAGIC = """
import datetime, json, os, stat, tempfile
from tensorboard import manager
r = manager.start(["--logdir", LOGDIR], timeout=datetime.timedelta(seconds=150))
tmp = tempfile.gettempdir()
print(json.dumps({"result": type(r).__name__, "port": getattr(r, "info", None) and r.info.port,
                  "pid": getattr(r, "info", None) and r.info.pid, "tmp": tmp,
                  "scratch": os.environ.get("_CONDOR_SCRATCH_DIR"),
                  "mode": oct(stat.S_IMODE(os.stat(os.path.dirname(tmp)).st_mode)), "netns": netns_refused()}),
      file=open(INFO + ".tmp", "w"))
os.rename(INFO + ".tmp", INFO)
# The kernel stays busy (a deleted kernel takes its process group, TensorBoard too) until the test is done.
import time
deadline = time.monotonic() + 240
while not os.path.exists(INFO + ".done") and time.monotonic() < deadline:
    time.sleep(0.2)
"""
NETNS = """
import subprocess, sys
def netns_refused():
    return subprocess.run([sys.executable, "-c", "from condorhub.lab.tensorboard.netns import enter; print(enter())"],
                          capture_output=True, text=True).stdout.strip()
"""


def processes_of(uid: int, marker: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_tensorboard_in_a_condor_job_is_private_and_reached_through_the_hub(hub, ldap_home_base):  # noqa: F811
    home = ldap_home_base / "alice"
    write_scalars(home / "tb-runs", runs=("gpu_run",), steps=20)
    for root, dirs, files in os.walk(home / "tb-runs"):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, ALICE_UID, ALICE_UID)
    alice = login(hub, "alice")
    events = start_server(alice, "alice", "gpu-1")
    assert events[-1].get("ready"), events
    base = f"{alice.url}/user/alice"
    assert alice.http.get(f"{base}/lab", timeout=60).status_code == 200  # sets the server's _xsrf cookie
    xsrf = alice.http.cookies.get("_xsrf", path="/user/alice/") or alice.http.cookies.get("_xsrf")
    try:
        # The Lab's TensorBoard, through the hub with alice's cookie.
        r = alice.http.post(f"{base}/condorhub/api/tensorboard", json={"logdir": "tb-runs"},
                            headers={"X-XSRFToken": xsrf}, timeout=30)  # fmt: skip
        assert r.status_code == 201, r.text
        inst = r.json()
        runs = wait_for("TensorBoard's runs through the hub", lambda: _runs(alice, f"{base}/{inst['url']}data/runs"), timeout=150)
        assert runs == ["gpu_run"]
        (child,) = processes_of(ALICE_UID, b"condorhub.lab.tensorboard.child")
        server = parent_of(child)
        sock = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        sock = sock[sock.index(b"--socket") + 1].decode()
        # The private folder is under the job's scratch directory (HTCondor's TMPDIR), 0700, alice's.
        env = dict(i.split(b"=", 1) for i in Path(f"/proc/{child}/environ").read_bytes().split(b"\0") if b"=" in i)
        scratch = env[b"_CONDOR_SCRATCH_DIR"].decode()
        assert sock.startswith(scratch + "/condorhub-lab-"), (sock, scratch)
        # No TCP port of the node's network: TensorBoard and its data server (in a network of its own
        # where the job may create one; its log says which).
        assert tcp_listen_ports(child, netns_of=server) == set()
        private_network = os.readlink(f"/proc/{child}/ns/net") != os.readlink(f"/proc/{server}/ns/net")
        print(f"TensorBoard in the condor job: private network {private_network}")

        # %tensorboard in a kernel of that server.
        info = home / f"magic-{os.getpid()}.json"
        code = NETNS + MAGIC.replace("LOGDIR", repr(str(home / "tb-runs"))).replace("INFO", repr(str(info)))
        kernel = threading.Thread(target=run_in_kernel, args=(alice, "alice", code), kwargs={"timeout": 300}, daemon=True)
        kernel.start()
        wait_for("the kernel's %tensorboard", info.exists, timeout=180)
        magic = json.loads(info.read_text())
        # The pool's node is a chroot (a Debian root), where the kernel refuses new user namespaces
        # (unshare: EPERM in a chroot); a real node is not. Either way no TCP port is open (below).
        print(f"private network in the job: {magic['netns']}")
        assert magic["result"] == "StartLaunched", magic
        assert magic["tmp"].startswith(magic["scratch"] + "/condorhub-lab-") and magic["mode"] == "0o700", magic
        shown = wait_for("%tensorboard through the hub",
                         lambda: _runs(alice, f"{base}/condorhub/tensorboard-port/{magic['port']}/data/runs"), timeout=150,
                         context=lambda: f"{LAST} {magic}")  # fmt: skip
        assert shown == ["gpu_run"]
        assert tcp_listen_ports(magic["pid"], netns_of=server) == set()
        Path(f"{info}.done").write_text("")
        kernel.join(60)
    finally:
        stop_server(alice, "alice")
        for leftover in home.glob(f"magic-{os.getpid()}.json*"):
            leftover.unlink()


LAST: dict = {}


def _runs(client, url):
    r = client.http.get(url, timeout=30)
    LAST["answer"] = f"{r.status_code} {r.text[:500]}"
    return r.json() if r.status_code == 200 and r.json() else None  # [] until TensorBoard's first load
