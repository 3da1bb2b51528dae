"""GPUs given back (issue 14, part 3), on the session's real HTCondor pool (two simulated GPUs) with a hub
subprocess, its proxy and its idle culler service (jupyterhub-idle-culler, started by the hub):

- alice's idle 1-GPU server is culled after its profile's idle timeout (20 s here; the CPU profiles keep
  10 min), its job leaves the queue and carol's 1-GPU server, waiting in the queue for a GPU, starts; alice's
  home page says why hers stopped;
- bob's 1-GPU server, whose kernel runs one long silent cell (``time.sleep``), is not culled although nothing
  talks to it for longer than the timeout: a busy kernel is activity;
- in Chromium, the Lab of a server with a 1-minute runtime limit warns twice before the limit ends it (50 s
  and 25 s before, in place of 15 and 5 min), and the home page then says the runtime limit stopped it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid

import htcondor2
import pytest
import websocket

from devstack import node_root as wr
from tests.support.browser import chromium_page, login_to_lab, screenshot
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir
from tests.test_condor_e2e import condor_profiles, hub_jobs, login, messages, progress_events, wait_for

pytestmark = [pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

GPU_IDLE_TIMEOUT = 20


@pytest.fixture(scope="module")
def hub(slapd, condor_pool):
    work = scratch_dir("condorhub-culling-hub-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["hub"]["admin_users"] = ["carol"]  # reads /hub/metrics
    site["htcondor"] = {
        "condor_config": str(condor_pool.condor_config_path),
        "token_file": str(condor_pool.token_path),
        "user_tokens": {"signing_key_file": str(condor_pool.signing_key_path)},
        "server_venv": wr.WORKER_VENV,
        "poll_interval": 1,
        "query_timeout": 10,
        "queue_timeout": "5m",
        # carol is an instructor: her group as the pool's user map has it (tests/support/pool_policy.py).
        "accounting_groups": {"student": "group_students", "researcher": "group_researchers",
                              "instructor": "group_instructors"},
    }
    profiles = condor_profiles()
    for profile in profiles:
        profile["roles"] = [*profile["roles"], "instructor"] if profile["slug"] == "gpu-1" else profile["roles"]
        profile["idle_timeout"] = f"{GPU_IDLE_TIMEOUT}s" if profile.get("gpus") else "10m"
    profiles.append({"slug": "short", "kind": "condor", "display_name": "Short CPU", "roles": ["student"], "cpus": 1,
                     "memory": "1G", "runtime": "60s", "idle_timeout": "10m"})
    site["profiles"] += profiles
    # Look every 2 s; servers report activity every 6 s (a third of the shortest idle timeout, set by the hub).
    site["culling"] = {"check_interval": "2s", "idle_timeout": "10m"}
    # The Lab's warnings 50 s and 25 s before the 1-minute limit of "short" (15 and 5 min by default).
    hub = Hub(work, site, extra_args=["--ProfileSpawner.limit_warning=50",
                                      "--ProfileSpawner.limit_last_warning=25"]).start()
    hub.hub_id = f"{_fqdn()}:{work / 'state'}"
    yield hub
    hub.stop()
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f'CondorhubHub == "{hub.hub_id}"')
    shutil.rmtree(work, ignore_errors=True)


def _fqdn() -> str:
    import socket

    return socket.getfqdn()


def request_server(client: HubClient, profile: str) -> None:
    page = client.spawn_form({"profile": profile})
    said = re.findall(r"(?s)<p[^>]*>(.*?)</p>", page.text)
    assert page.status_code == 200, f"{page.status_code}: {said}"


def server_of(client: HubClient, user: str) -> dict:
    return client.api("GET", f"/users/{user}").json()["servers"].get("", {})


def start_busy_cell(client: HubClient, user: str, code: str) -> str:
    """Start a kernel through the proxy and a cell in it; return once the kernel says it is busy, and hang up
    (no websocket, no request: the server sees no traffic while the cell runs)."""
    client.wait_for_server(user)  # the server's own cookie, through the hub's OAuth
    base = f"{client.url}/user/{user}"
    xsrf = client.http.cookies.get("_xsrf", path=f"/user/{user}/") or client.http.cookies.get("_xsrf")
    kernel = client.http.post(f"{base}/api/kernels", json={"name": "python3"}, headers={"X-XSRFToken": xsrf}, timeout=30)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    cookies = "; ".join(f"{c.name}={c.value}" for c in client.http.cookies)
    ws = websocket.create_connection(base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?_xsrf={xsrf}",
                                     cookie=cookies, origin=client.url, timeout=60)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user, "session": uuid.uuid4().hex,
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False},
        }))
        while True:
            msg = json.loads(ws.recv())
            if (msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "busy"):
                return kernel_id
    finally:
        ws.close()


def stop(client: HubClient, user: str) -> None:
    client.api("DELETE", f"/users/{user}/server")


def test_an_idle_gpu_server_is_culled_and_its_gpu_goes_to_the_next_in_the_queue_but_a_busy_kernel_is_kept(hub):
    alice, bob, carol = login(hub, "alice"), login(hub, "bob"), login(hub, "carol")
    try:
        request_server(bob, "gpu-1")
        assert progress_events(bob, "bob")[-1].get("ready")
        # bob's cell runs for 2 min without a word; nothing else reaches his server after this.
        start_busy_cell(bob, "bob", "import time; time.sleep(120)")
        bob_quiet_since = time.monotonic()
        request_server(alice, "gpu-1")
        events = progress_events(alice, "alice")
        assert events[-1].get("ready"), messages(events)
        alice_ready = time.monotonic()
        (alice_job,) = hub_jobs(hub, 'CondorhubUser == "alice"')
        # Both GPUs taken: carol's server waits in the queue.
        request_server(carol, "gpu-1")
        wait_for("carol's job to wait in the queue", lambda: [j for j in hub_jobs(hub, 'CondorhubUser == "carol"')
                                                             if j["JobStatus"] == 1], timeout=30)
        assert server_of(alice, "alice").get("ready"), "alice was culled before carol's server queued"

        # alice's server goes: culled once idle for 20 s (a check every 2 s), her job leaves the queue.
        wait_for("alice's idle server to be culled", lambda: not server_of(alice, "alice"), timeout=60,
                 context=lambda: hub.log_tail(30))
        culled_after = time.monotonic() - alice_ready
        wait_for("alice's job to leave the queue", lambda: not hub_jobs(hub, 'CondorhubUser == "alice"'), timeout=30)
        # ... and its GPU goes to carol's waiting server.
        carol_events = progress_events(carol, "carol")
        assert carol_events[-1].get("ready"), messages(carol_events)
        carol_started = time.monotonic() - alice_ready
        (carol_job,) = hub_jobs(hub, 'CondorhubUser == "carol"')
        assert (carol_job["JobStatus"], carol_job["RequestGpus"]) == (2, 1)

        # alice reads why on her home page.
        home = alice.http.get(f"{hub.url}/hub/home", timeout=30).text
        assert (f"Your server was stopped after {GPU_IDLE_TIMEOUT} s without activity (idle timeout of the 1 GPU "
                "profile).") in home, home[-3000:]
        assert "Idle culler stops alice" in hub.log_tail(400)
        metrics = carol.http.get(f"{hub.url}/hub/metrics", timeout=30).text
        assert 'condorhub_culls_total{profile="gpu-1"} 1.0' in metrics, metrics[-2000:]

        # bob's server, quiet all along but with a busy kernel, is still there well past his idle timeout.
        wait_for("bob's quiet time to pass the timeout",
                 lambda: time.monotonic() - bob_quiet_since > 2 * GPU_IDLE_TIMEOUT + 10, timeout=120, interval=1)
        assert server_of(bob, "bob").get("ready"), hub.log_tail(40)
        assert "Idle culler stops bob" not in hub.log_tail(400)
        assert alice_job["RequestGpus"] == 1
        print(f"alice culled {culled_after:.0f} s after her server was ready (idle timeout {GPU_IDLE_TIMEOUT} s, "
              f"check every 2 s); carol's queued server ready {carol_started:.0f} s after alice's was")
    finally:
        for client, user in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            stop(client, user)
        wait_for("every server to stop", lambda: not hub_jobs(hub), timeout=60)


@pytest.mark.browser
def test_the_lab_warns_before_the_runtime_limit_and_the_home_page_says_the_limit_stopped_the_server(hub):
    alice = login(hub, "alice")
    request_server(alice, "short")
    events = progress_events(alice, "alice")
    try:
        assert events[-1].get("ready"), messages(events)
        with chromium_page() as page:
            login_to_lab(page, hub.url, "alice")
            first = page.get_by_text(re.compile(r"Your server stops in \d+ s: its runtime limit\. Save your work now"))
            first.first.wait_for(timeout=45_000)
            # The second one, 25 s before the end (the first said more than that).
            second = page.get_by_text(re.compile(r"Your server stops in (2[0-5]|1\d|\d) s: its runtime limit"))
            second.first.wait_for(timeout=45_000)
            screenshot(page, "lab-runtime-limit-warning")
            assert page.get_by_role("button", name="Save all").count() >= 1
        # HTCondor ends the job at its limit; the hub notices, and says so.
        wait_for("the runtime limit to end alice's server", lambda: not server_of(alice, "alice"), timeout=120,
                 context=lambda: hub.log_tail(30))
        home = alice.http.get(f"{hub.url}/hub/home", timeout=30).text
        assert "Your server was stopped by its runtime limit of 1 min (the Short CPU profile)" in home, home[-3000:]
    finally:
        stop(alice, "alice")
