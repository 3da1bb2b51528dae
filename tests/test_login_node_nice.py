"""Login-node servers yield the CPU to the hub (LoginNodeSpawner.nice): the login node is the hub machine, and a
class's servers starting and cells running took the CPU from the hub and the proxy, so every page and every
spawn of every user waited on them (benchmarks/class_scale.py, docs/benchmarks.md).

Real hub, real LDAP login, a real login-node server and a kernel it starts: both run 10 steps nicer than the hub,
and the user, with the server's own credentials, cannot take that back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from condorhub.spawner.loginnode import LoginNodeSpawner
from devstack.directory import DEMO_USERS
from tests.support.hub import Hub, demo_site
from tests.support.scratch import scratch_dir

ALICE = next(u for u in DEMO_USERS if u.uid == "alice")


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.fixture(scope="module")
def hub(slapd):
    work = scratch_dir("condorhub-nice-hub-")
    hub = Hub(work, demo_site(slapd.uri, slapd.suffix, work / "state")).start()
    yield hub
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.e2e
@pytest.mark.ldap
def test_a_login_node_server_and_its_kernels_run_nicer_than_the_hub(hub):
    client = hub.client()
    assert client.login(ALICE.uid, ALICE.password, follow=False).status_code == 302
    client.spawn_form({"profile": "login-node"})
    assert "started" in client.wait_for_server(ALICE.uid)
    xsrf = client.http.cookies.get("_xsrf", path=f"/user/{ALICE.uid}/") or client.http.cookies.get("_xsrf")
    kernel = client.http.post(f"{hub.url}/user/{ALICE.uid}/api/kernels", json={"name": "python3"},
                              headers={"X-XSRFToken": xsrf}, timeout=60)
    assert kernel.status_code == 201, kernel.text

    hub_nice = _nice(hub.proc.pid)
    mine = [pid for pid in hub.server_pids() if Path(f"/proc/{pid}").stat().st_uid == ALICE.uid_number]
    assert len(mine) >= 2, f"the server and its kernel as alice, not {mine}"  # the server, the kernel
    assert {pid: _nice(pid) for pid in mine} == {pid: min(19, hub_nice + 10) for pid in mine}

    # alice, with her server's uid and gid, tries to get the hub's priority back: the kernel refuses it.
    server = min(mine)
    attempt = subprocess.run(
        [sys.executable, "-c", f"import os; os.setpriority(os.PRIO_PROCESS, {server}, {hub_nice})"],
        preexec_fn=lambda: (os.setgroups([ALICE.gid_number]), os.setgid(ALICE.gid_number), os.setuid(ALICE.uid_number)),
        capture_output=True, text=True, timeout=30,
    )
    assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, (attempt.returncode, attempt.stderr)
    assert _nice(server) == min(19, hub_nice + 10)


def test_login_node_spawner_refuses_a_niceness_outside_0_to_19():
    assert LoginNodeSpawner().nice == 10
    with pytest.raises(Exception, match="LoginNodeSpawner.nice must be between 0 and 19"):
        LoginNodeSpawner(nice=20)
    with pytest.raises(Exception, match="between 0 and 19"):
        LoginNodeSpawner(nice=-5)
