"""End to end on a real HTCondor pool: browser-like clients log in through the proxy (real OpenLDAP),
pick GPU profiles, and get JupyterLab running as an HTCondor job on the pool's (simulated) GPU node.

Nothing is mocked: the hub is a subprocess behind configurable-http-proxy, it submits through the
htcondor2 bindings with its IDTOKEN as a queue super user, the job runs as the LDAP user in the pool's
Debian root (users via nslcd, homes bind-mounted at the same path), the launcher reports the port to the
hub's condorhub API, and the tests talk to the server through the proxy (kernels over websockets).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import htcondor2
import pytest
import requests
import websocket

from devstack import node_root as wr
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

GPU_ID = re.compile(r"^GPU-[0-9a-f]+$")


def condor_profiles() -> list[dict]:
    return [
        {
            "slug": "cpu",
            "kind": "condor",
            "display_name": "CPU batch",
            "roles": ["student", "researcher"],
            "cpus": 1,
            "memory": "1G",
            "runtime": "1h",
        },
        {
            "slug": "gpu-1",
            "kind": "condor",
            "display_name": "1 GPU",
            "roles": ["student", "researcher"],
            "cpus": 1,
            "memory": "1G",
            "runtime": "1h",
            "gpus": 1,
        },
        {
            "slug": "gpu-2",
            "kind": "condor",
            "display_name": "2 GPUs",
            "roles": ["researcher"],
            "cpus": 1,
            "memory": "1G",
            "runtime": "1h",
            "gpus": 2,
        },
    ]


@pytest.fixture(scope="module")
def hub(slapd, condor_pool):
    work = scratch_dir("condorhub-condor-hub-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    # JupyterHub's start timeout for login-node servers; HTCondor servers get queue + startup timeout
    # instead (the bob test waits longer than this in the queue).
    site["hub"]["server_start_timeout"] = 30
    site["htcondor"] = {
        "condor_config": str(condor_pool.condor_config_path),
        "token_file": str(condor_pool.token_path),
        "user_tokens": {"signing_key_file": str(condor_pool.signing_key_path)},
        "server_venv": wr.WORKER_VENV,
        "poll_interval": 1,
        "query_timeout": 10,
        "queue_timeout": "5m",
        # Short, so that the bob test can show a queue wait longer than it does not kill a server.
        "server_start_timeout": "45s",
        "unknown_grace": "1m",
        "accounting_groups": {"student": "group_students", "researcher": "group_researchers"},
    }
    site["profiles"] += condor_profiles()
    # Orphans are swept at start only when older than orphan_min_age (120 s by default, for spawns whose
    # submission is just returning); the restart test makes one seconds before the restart.
    hub = Hub(work, site, extra_args=["--HTCondorQueue.orphan_min_age=3"]).start()
    hub.hub_id = f"{_fqdn()}:{work / 'state'}"
    yield hub
    hub.stop()
    schedd().act(htcondor2.JobAction.Remove, f'CondorhubHub == "{hub.hub_id}"')
    shutil.rmtree(work, ignore_errors=True)


def _fqdn() -> str:
    import socket

    return socket.getfqdn()


def schedd() -> htcondor2.Schedd:
    return htcondor2.Schedd()


def hub_jobs(hub, constraint: str = "true") -> list[dict]:
    return [
        dict(ad)
        for ad in schedd().query(
            f'CondorhubHub == "{hub.hub_id}" && JobStatus != 3 && ({constraint})',
            projection=["ClusterId", "ProcId", "JobStatus", "Owner", "RequestGpus", "AcctGroup", "CondorhubUser"],
        )
    ]


def wait_for(what: str, predicate, timeout: float = 60, interval: float = 0.5, context=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} {context()}")
        time.sleep(interval)


def login(hub: Hub, user: str) -> HubClient:
    client = hub.client()
    assert client.login(user, f"{user}-pw", follow=False).status_code == 302
    return client


def progress_events(client: HubClient, user: str, timeout: float = 120, events: list | None = None) -> list[dict]:
    """The spawn page's event stream, read like the page does, until ready or failed (appended to
    ``events`` as they arrive, for a reader in another thread)."""
    events = [] if events is None else events
    with client.http.get(
        f"{client.url}/hub/api/users/{user}/server/progress",
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=timeout,
    ) as stream:
        assert stream.status_code == 200, stream.text
        for line in stream.iter_lines(chunk_size=None, decode_unicode=True):  # as they arrive
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                events.append(event)
                if event.get("ready") or event.get("failed"):
                    break
    return events


def start_server(client: HubClient, user: str, profile: str) -> list[dict]:
    page = client.spawn_form({"profile": profile})
    assert page.status_code == 200, page.text[-2000:]
    return progress_events(client, user)


def stop_server(client: HubClient, user: str) -> None:
    r = client.api("DELETE", f"/users/{user}/server")
    assert r.status_code in (202, 204), r.text
    wait_for(f"{user}'s server to stop", lambda: not client.api("GET", "/user").json()["servers"], timeout=60)


def messages(events: list[dict]) -> list[str]:
    return [e.get("message", "") for e in events]


def run_in_kernel(client: HubClient, user: str, code: str, timeout: float = 60) -> str:
    """Start a kernel through the proxy (REST), run ``code`` over the kernel websocket, return stdout."""
    base = f"{client.url}/user/{user}"
    xsrf = client.http.cookies.get("_xsrf", path=f"/user/{user}/") or client.http.cookies.get("_xsrf")
    kernel = client.http.post(f"{base}/api/kernels", json={"name": "python3"}, headers={"X-XSRFToken": xsrf}, timeout=30)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    cookies = "; ".join(f"{c.name}={c.value}" for c in client.http.cookies)
    ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?_xsrf={xsrf}"
    ws = websocket.create_connection(ws_url, cookie=cookies, origin=client.url, timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user, "session": uuid.uuid4().hex, "version": "5.3"},
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False},
                    "channel": "shell",
                }
            )
        )
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError(f"kernel error: {msg['content']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
        raise AssertionError("kernel did not finish")
    finally:
        ws.close()
        client.http.delete(f"{base}/api/kernels/{kernel_id}", headers={"X-XSRFToken": xsrf}, timeout=30)


def server_token(user: str) -> str:
    """The API token of ``user``'s running server, read from its process (as root, on this machine)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = dict(
                item.split(b"=", 1) for item in (entry / "environ").read_bytes().split(b"\0") if b"=" in item
            )
        except OSError:
            continue
        if env.get(b"JUPYTERHUB_USER") == user.encode() and b"JUPYTERHUB_API_TOKEN" in env:
            return env[b"JUPYTERHUB_API_TOKEN"].decode()
    raise AssertionError(f"no running server process of {user}")


# -- the tests ----------------------------------------------------------------------------------------


def test_alice_gets_one_gpu_and_her_kernel_sees_exactly_it(hub, condor_pool, ldap_home_base):
    alice = login(hub, "alice")
    form = alice.http.get(f"{hub.url}/hub/spawn", timeout=30).text
    # Her role's profiles only: no 2-GPU profile for students.
    assert 'value="gpu-1"' in form and 'value="cpu"' in form and 'value="gpu-2"' not in form

    events = start_server(alice, "alice", "gpu-1")
    text = messages(events)
    assert events[-1].get("ready"), text
    submitted = next(m for m in text if m.startswith("Submitted to HTCondor as job"))
    job_id = submitted.rsplit(" ", 1)[1]
    assert any(re.match(rf"Running on \S+ \(job {re.escape(job_id)}\)", m) for m in text), text
    assert any(m.startswith("Server starting on") for m in text), text
    assert text[-1].startswith("Server ready at")

    status = alice.wait_for_server("alice")
    assert "started" in status
    # The job is alice's, with one GPU, charged to her role's accounting group.
    (job,) = hub_jobs(hub, 'CondorhubUser == "alice"')
    assert f"{job['ClusterId']}.{job['ProcId']}" == job_id
    assert (job["Owner"], job["RequestGpus"], job["JobStatus"]) == ("alice", 1, 2)
    assert job["AcctGroup"] == "group_students"

    visible = run_in_kernel(alice, "alice", "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES', ''))").strip()
    ids = [g for g in visible.split(",") if g]
    assert len(ids) == 1 and GPU_ID.match(ids[0]), visible

    # The secrets file was consumed by the launcher; its folder is alice's alone.
    folder = ldap_home_base / "alice" / ".condorhub"
    assert not list(folder.glob("*.env"))
    assert (folder.stat().st_uid, oct(folder.stat().st_mode & 0o777)) == (10001, "0o700")

    # Another pool user reading the whole queue sees none of alice's secrets.
    token = server_token("alice")
    state = hub.workdir / "state"
    secrets = {
        "api token": token,
        "cookie secret": (state / "cookie_secret").read_text().strip(),
        "auth state key": (state / "auth_state_key").read_text().strip(),
    }
    queue_as_bob = condor_pool.run_in_root(["condor_q", "-allusers", "-l"], user="bob").stdout
    assert f'Owner = "alice"' in queue_as_bob
    for name, value in secrets.items():
        assert value and value not in queue_as_bob, f"{name} is readable in condor_q -l"
    assert "JUPYTERHUB" not in queue_as_bob

    # Stopping the server removes its job.
    stop_server(alice, "alice")
    wait_for("alice's job to leave the queue", lambda: not hub_jobs(hub, 'CondorhubUser == "alice"'), timeout=30)


def test_bob_gets_two_gpus_and_the_next_gpu_request_waits_saying_why(hub):
    bob = login(hub, "bob")
    events = start_server(bob, "bob", "gpu-2")
    assert events[-1].get("ready"), messages(events)
    bob.wait_for_server("bob")
    visible = run_in_kernel(bob, "bob", "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES', ''))").strip()
    ids = visible.split(",")
    assert len(ids) == 2 and all(GPU_ID.match(i) for i in ids), visible

    alice = login(hub, "alice")
    page = alice.spawn_form({"profile": "gpu-1"})
    assert page.status_code == 200
    seen: list[dict] = []
    reader = threading.Thread(target=progress_events, args=(alice, "alice", 180, seen))
    reader.start()
    waiting = wait_for(
        "alice's progress to say why she waits",
        lambda: [m for m in messages(seen) if m.startswith("Waiting in the queue")]
        and "0 of the pool's 2 GPUs are free" in " ".join(messages(seen)),
        timeout=60,
        context=lambda: f"{messages(seen)}\n{hub.log_tail(40)}",
    )
    assert waiting
    assert any("waiting for 1 GPU to become free" in m for m in messages(seen)), messages(seen)
    (alice_job,) = hub_jobs(hub, 'CondorhubUser == "alice"')
    assert alice_job["JobStatus"] == 1

    # She waits longer than the startup timeout (45 s) and than the site's hub.server_start_timeout (30 s, what
    # JupyterHub would kill a spawn after): waiting in the queue is not starting.
    time.sleep(50)
    assert not [e for e in seen if e.get("failed")], messages(seen)
    assert hub_jobs(hub, 'CondorhubUser == "alice"')[0]["JobStatus"] == 1
    # Bob stops: the GPUs free up and alice's waiting server starts (her startup timeout counts only now).
    stop_server(bob, "bob")
    reader.join(180)
    assert seen and seen[-1].get("ready"), messages(seen)
    alice.wait_for_server("alice")
    stop_server(alice, "alice")


def test_condor_rm_marks_the_server_stopped_with_the_reason(hub):
    alice = login(hub, "alice")
    events = start_server(alice, "alice", "cpu")
    assert events[-1].get("ready"), messages(events)
    (job,) = hub_jobs(hub, 'CondorhubUser == "alice"')
    schedd().act(htcondor2.JobAction.Remove, [f"{job['ClusterId']}.0"], reason=("maintenance of gpu node", None))
    wait_for("the hub to notice", lambda: not alice.api("GET", "/user").json()["servers"], timeout=30)
    form = alice.http.get(f"{hub.url}/hub/spawn", timeout=30).text
    assert "Your last server stopped:" in form and "maintenance of gpu node" in form


def test_condor_hold_stops_the_server_shows_the_reason_and_removes_the_job(hub):
    alice = login(hub, "alice")
    events = start_server(alice, "alice", "cpu")
    assert events[-1].get("ready"), messages(events)
    (job,) = hub_jobs(hub, 'CondorhubUser == "alice"')
    job_id = f"{job['ClusterId']}.0"
    schedd().act(htcondor2.JobAction.Hold, [job_id], reason=("over the disk quota", None))
    wait_for("the hub to notice", lambda: not alice.api("GET", "/user").json()["servers"], timeout=30)
    form = alice.http.get(f"{hub.url}/hub/spawn", timeout=30).text
    assert "HTCondor held your server" in form and "over the disk quota" in form, hub.log_tail(30)
    # Held is not left behind: the hub removed the job.
    wait_for("the held job to be removed", lambda: not hub_jobs(hub, f"ClusterId == {job['ClusterId']}"), timeout=30)


def test_hub_restart_keeps_running_servers_and_reconciles_the_queue(hub):
    alice, bob = login(hub, "alice"), login(hub, "bob")
    assert start_server(alice, "alice", "cpu")[-1].get("ready")
    assert start_server(bob, "bob", "cpu")[-1].get("ready")
    alice.wait_for_server("alice")
    (bob_job,) = hub_jobs(hub, 'CondorhubUser == "bob"')

    hub.stop()
    # While the hub is down: bob's job ends, and a job of this hub appears that no server owns (as if
    # the hub had died between submitting and saving the server).
    schedd().act(htcondor2.JobAction.Remove, [f"{bob_job['ClusterId']}.0"])
    orphan = schedd().submit(
        htcondor2.Submit(
            {
                "executable": "/bin/sleep",
                "arguments": "600",
                "+Owner": '"carol"',
                "+CondorhubHub": f'"{hub.hub_id}"',
                "+CondorhubUser": '"carol"',
                "initialdir": "/tmp",
                "should_transfer_files": "NO",
                "transfer_executable": "false",
                "hold": "true",
            }
        )
    ).cluster()
    time.sleep(4)  # older than orphan_min_age
    hub.start()

    # Alice's server is still reachable through the restarted hub (the proxy was restarted too).
    alice.wait_for_server("alice", timeout=60)
    assert alice.api("GET", "/user").json()["servers"][""]["ready"]
    # Bob's server, whose job is gone, was cleared; the orphan was removed.
    wait_for("bob's server to be cleared", lambda: not bob.api("GET", "/user").json()["servers"], timeout=30)
    wait_for("the orphan to be removed", lambda: not hub_jobs(hub, f"ClusterId == {orphan}"), timeout=30)
    assert [j["CondorhubUser"] for j in hub_jobs(hub)] == ["alice"]
    stop_server(alice, "alice")


def schedd_pids(pool) -> list[int]:
    root = str(pool.root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "condor_schedd" and os.readlink(entry / "root") == root:
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def test_a_hung_schedd_is_unknown_not_gone_and_the_hub_stays_responsive(hub, condor_pool):
    alice = login(hub, "alice")
    assert start_server(alice, "alice", "cpu")[-1].get("ready")
    alice.wait_for_server("alice")
    pids = schedd_pids(condor_pool)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # queries now hang until they time out (query_timeout 10 s)
    try:
        deadline = time.monotonic() + 15
        delays = []
        while time.monotonic() < deadline:
            start = time.monotonic()
            try:
                model = alice.api("GET", "/user", timeout=5).json()
            except requests.RequestException as err:
                raise AssertionError(f"the hub did not answer: {err}\n{hub.log_tail(80)}") from None
            assert model["servers"][""]["ready"], "server dropped while unknown"
            delays.append(time.monotonic() - start)
            time.sleep(0.5)
        assert "HTCondor queue unknown" in hub.log_file.read_text()
        # The bindings run in a thread: a hung schedd never stalls the hub's event loop.
        assert max(delays) < 1.0, delays
        alice.wait_for_server("alice", timeout=10)  # and the server itself still answers
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    wait_for("the queue view to recover", lambda: "HTCondor queue answers again" in hub.log_file.read_text(), timeout=30)
    assert alice.api("GET", "/user").json()["servers"][""]["ready"]
    stop_server(alice, "alice")


@pytest.mark.parametrize(
    "fields, status, message",
    [
        ({"profile": "gpu-2"}, 403, "Profile &#39;gpu-2&#39; is not available to your role(s) (student)"),
        ({"profile": "gpu-1", "gpus": "8"}, 400, "Unsupported option(s) &#39;gpus&#39;"),
        ({"profile": "gpu-1", "memory": "-1G"}, 400, "Unsupported option(s) &#39;memory&#39;"),
        ({"profile": "gpu-8"}, 400, "There is no profile &#39;gpu-8&#39;"),
    ],
    ids=["other-roles-profile", "8-gpus", "negative-memory", "unknown-profile"],
)
def test_crafted_spawn_requests_are_refused_and_the_queue_is_untouched(hub, fields, status, message):
    since = int(time.time()) - 1
    alice = login(hub, "alice")
    crafted = alice.http.post(f"{hub.url}/hub/spawn", data={**fields, "_xsrf": alice._xsrf()}, timeout=30)
    assert crafted.status_code == status, crafted.text[-1000:]
    assert message in crafted.text
    # Through the REST API as well.
    api = alice.api("POST", "/users/alice/server", json=fields)
    assert api.status_code in (400, 403), api.text
    time.sleep(1)
    assert not alice.api("GET", "/user").json()["servers"]
    assert not hub_jobs(hub, 'CondorhubUser == "alice"')
    # Nothing was submitted by anyone meanwhile (the queue is untouched, not just alice's part of it).
    assert schedd().query(f"QDate >= {since}", projection=["ClusterId"]) == []


def test_the_port_api_takes_only_a_starting_servers_own_token(hub):
    alice = login(hub, "alice")
    token = alice.api("POST", "/users/alice/tokens", json={"note": "test"}).json()["token"]
    report = requests.post(
        f"{hub.url}/hub/api/condorhub/port", json={"port": 40000}, headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert report.status_code == 403 and "belongs to no server of yours" in report.text
    no_token = requests.post(f"{hub.url}/hub/api/condorhub/port", json={"port": 40000}, timeout=10)
    assert no_token.status_code == 403
    # batchspawner's own endpoint (sets any spawner attribute) is not there at all.
    stock = requests.post(
        f"{hub.url}/hub/api/batchspawner", json={"port": 40000}, headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert stock.status_code == 404


# -- each user's own HTCondor identity in their server (issue 12 part 1) --------------------------------

#: Run in a user's kernel: who the pool thinks they are, what their token allows, and a job of their own.
POOL_AS_ME = r"""
import base64, json, os, stat, subprocess, htcondor2
config = os.environ["CONDOR_CONFIG"]
tokens = htcondor2.param["SEC_TOKEN_DIRECTORY"]
(name,) = os.listdir(tokens)
token = open(os.path.join(tokens, name)).read().strip()
claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
def my_schedd():  # as the README tells users: by SCHEDD_HOST where the configuration names one
    name = htcondor2.param.get("SCHEDD_HOST")
    return htcondor2.Schedd(htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, name)) if name else htcondor2.Schedd()
schedd = my_schedd()
job = schedd.submit(htcondor2.Submit({"executable": "/bin/sleep", "arguments": "600", "hold": "true",
    "transfer_executable": "false", "should_transfer_files": "NO", "request_cpus": "1",
    "request_memory": "64MB", "allowed_job_duration": "600", "+CondorhubPoolAccessTest": "true"}))
(ad,) = schedd.query(f"ClusterId == {job.cluster()}", projection=["Owner"])
import shutil  # the command-line tools: on every execute node (and a production hub host, a submit host)
cli = shutil.which("condor_q") and subprocess.run(
    ["condor_q", "-af", "Owner", "-constraint", f"ClusterId == {job.cluster()}"], capture_output=True, text=True)
print(json.dumps({
    "config": config, "config_mode": oct(stat.S_IMODE(os.stat(config).st_mode)),
    "token_dir_mode": oct(stat.S_IMODE(os.stat(tokens).st_mode)),
    "token_mode": oct(stat.S_IMODE(os.stat(os.path.join(tokens, name)).st_mode)),
    "sub": claims["sub"], "scope": claims["scope"], "lifetime": claims["exp"] - claims["iat"],
    "cluster": job.cluster(), "owner": ad["Owner"], "cli": cli and (cli.stdout.strip() or cli.stderr.strip()),
    "profiles": json.loads(os.environ["CONDORHUB_JOB_PROFILES"]),
}))
"""


def act_as(client: HubClient, user: str, action: str, cluster: int) -> str:
    """``action`` (Remove/Hold) on a job from ``user``'s kernel with their own credential; the schedd's counts."""
    code = (
        "import htcondor2\n"
        "name = htcondor2.param.get('SCHEDD_HOST')\n"
        "s = htcondor2.Schedd(htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, name)) if name else htcondor2.Schedd()\n"
        f"r = s.act(htcondor2.JobAction.{action}, 'ClusterId == {cluster}')\n"
        "print(r.get('TotalSuccess'), r.get('TotalPermissionDenied'), r.get('TotalNotFound'))\n"
    )
    return run_in_kernel(client, user, code).strip()


def bobs_held_job() -> int:
    """A held job of bob's, submitted by the hub (a queue super user) as bob."""
    result = schedd().submit(
        htcondor2.Submit(
            {
                "executable": "/bin/sleep",
                "arguments": "600",
                "hold": "true",
                "+Owner": '"bob"',
                "transfer_executable": "false",
                "should_transfer_files": "NO",
                "allowed_job_duration": "600",
            }
        )
    )
    return result.cluster()


def test_a_batch_server_can_submit_as_its_user_and_only_manage_its_users_jobs(hub, condor_pool):
    alice = login(hub, "alice")
    events = start_server(alice, "alice", "cpu")
    assert events[-1].get("ready"), messages(events)
    alice.wait_for_server("alice")
    bobs = bobs_held_job()
    try:
        seen = json.loads(run_in_kernel(alice, "alice", POOL_AS_ME))
        # Her own identity, limited to what a submitter needs, valid for the queue timeout + the profile's
        # runtime + 10 min (5m + 1h + 10m here).
        assert seen["sub"].startswith("alice@") and seen["scope"] == "condor:/READ condor:/WRITE"
        assert seen["lifetime"] == 300 + 3600 + 600
        # In the job's own scratch directory, private: nothing on a shared path.
        assert "/execute/" in seen["config"] and ".condorhub-htcondor" in seen["config"], seen["config"]
        assert (seen["config_mode"], seen["token_dir_mode"], seen["token_mode"]) == ("0o600", "0o700", "0o600")
        # Bindings and command-line tools both act as alice.
        assert (seen["owner"], seen["cli"]) == ("alice", "alice"), seen
        # The Lab learns the batch profiles her role may use (the spawn form's: no 2-GPU profile for students).
        assert [p["slug"] for p in seen["profiles"]] == ["cpu", "gpu-1"]
        assert seen["profiles"][1] | {"description": ""} == {
            "slug": "gpu-1", "display_name": "1 GPU", "description": "", "cpus": 1, "memory_mb": 1024, "gpus": 1,
            "runtime_seconds": 3600, "gpus_minimum_capability": None, "gpus_minimum_memory_mb": None,
        }
        # Her credential acts on her own jobs only: bob's job is refused and stays.
        assert act_as(alice, "alice", "Remove", bobs).split()[0] == "0"
        assert act_as(alice, "alice", "Hold", bobs).split()[0] == "0"
        assert schedd().query(f"ClusterId == {bobs}", projection=["JobStatus"]), "alice's token removed bob's job"
        assert act_as(alice, "alice", "Remove", seen["cluster"]).split()[0] == "1"
        # Not in the public job ad.
        ads = condor_pool.run_in_root(["condor_q", "-allusers", "-l"], user="bob").stdout
        token_dir = Path(seen["config"]).parent / "tokens.d"
        token = next(p for p in (condor_pool.root / str(token_dir).lstrip("/")).iterdir()).read_text().strip()
        assert token.split(".")[2] not in ads
    finally:
        schedd().act(htcondor2.JobAction.Remove, f"ClusterId == {bobs}")
    stop_server(alice, "alice")
    # The credential went with the job: HTCondor removed its scratch directory.
    wait_for(
        "the job's scratch directory (and the token in it) to be gone",
        lambda: not list((condor_pool.root / "var/lib/condor/execute").glob("*/.condorhub-htcondor")),
        timeout=60,
    )


def test_a_login_node_server_gets_a_private_credential_that_leaves_with_it(hub, ldap_home_base):
    bob = login(hub, "bob")
    events = start_server(bob, "bob", "login-node")
    assert events[-1].get("ready"), messages(events)
    bob.wait_for_server("bob")
    seen = json.loads(run_in_kernel(bob, "bob", POOL_AS_ME))
    folder = ldap_home_base / "bob" / ".condorhub" / "htcondor-default"
    assert seen["config"] == str(folder / "condor_config")
    # (this test machine, the login node, has the bindings but no condor_* tools: a production hub host has both)
    assert (seen["sub"].startswith("bob@"), seen["owner"]) == (True, "bob"), seen
    assert seen["lifetime"] == 7 * 86400  # the site's user_tokens.login_node_lifetime (its default)
    assert (folder.stat().st_uid, oct(folder.stat().st_mode & 0o777)) == (10002, "0o700")
    # Another user (alice's uid) cannot read bob's token, on the login node where both have shells.
    peek = subprocess.run(
        ["cat", str(folder / "tokens.d" / "user.token")], user=10001, group=10000, capture_output=True, text=True
    )
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    schedd().act(htcondor2.JobAction.Remove, f"ClusterId == {seen['cluster']}")
    stop_server(bob, "bob")
    wait_for("bob's token to go with his server", lambda: not folder.exists(), timeout=15, context=lambda: hub.log_tail(40))


def test_the_hub_derives_the_key_condor_token_create_signs_with(condor_pool):
    """A token of HTCondor's own tool verifies under the key the hub derives from the pool's signing key."""
    import base64
    import hashlib
    import hmac

    from condorhub.spawner.condor.credentials import signing_key

    reference = condor_pool.run_in_root(
        ["condor_token_create", "-identity", "alice@condorhub.test", "-key", "POOL", "-authz", "READ", "-lifetime", "60"]
    ).stdout.strip()
    header, claims, signature = reference.split(".")
    key = signing_key(condor_pool.signing_key_path.read_bytes())
    ours = base64.urlsafe_b64encode(hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest())
    assert ours.rstrip(b"=").decode() == signature
