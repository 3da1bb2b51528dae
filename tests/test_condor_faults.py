"""Fault drills on the pool (issue 14, part 4): the hub, the schedd or the execute node fails under a running
class, and what users notice is checked, with the real hub behind configurable-http-proxy, the real LDAP login
and the real HTCondor pool of the suite (tests/support/condor.py: one execute node with 2 simulated GPUs and 4
CPUs). Each drill ends with the pool and the hub back to normal, and measures how long recovery took (the
numbers in docs/fault-drills.md come from these tests; they print them, run with ``-s`` to see them).

The five demo users log in, so the hub keeps the pool's user map (``htcondor.user_map``) as in production;
the map is put back as the session's fixture left it when the drills end.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import htcondor2
import pytest

from devstack import node_root as wr
from devstack.directory import DEMO_USERS
from condorhub.spawner.condor.usermap import UserMapWriter
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir
from tests.test_condor_e2e import login, messages, progress_events, schedd_pids, start_server, stop_server, wait_for

pytestmark = [pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

#: The demo's admin (its name has changed before: taken from the directory).
ADMIN = next(u.uid for u in DEMO_USERS if u.group == "admins")
USERS = ("alice", "bob", "carol", "dave", ADMIN)
ALL_ROLES = ["student", "researcher", "instructor", "guest", "admin"]
QUERY_TIMEOUT = 3
UNREACHABLE_GRACE = 10


def drill_profiles() -> list[dict]:
    # Small servers: five of them share this machine's 2 cores with the hub and the pool.
    small = {"kind": "condor", "roles": ALL_ROLES, "cpus": 1, "memory": "256M", "runtime": "1h"}
    return [
        {**small, "slug": "cpu-small", "display_name": "CPU batch (small)"},
        {**small, "slug": "gpu-1", "display_name": "1 GPU", "gpus": 1},
        {**small, "slug": "gpu-2", "display_name": "2 GPUs", "gpus": 2},
    ]


@pytest.fixture(scope="module")
def hub(slapd, condor_pool):
    saved_map = condor_pool.user_map_path.read_text()
    work = scratch_dir("condorhub-faults-hub-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["hub"]["server_start_timeout"] = 30
    site["htcondor"] = {
        "condor_config": str(condor_pool.condor_config_path),
        "token_file": str(condor_pool.token_path),
        "user_tokens": {"signing_key_file": str(condor_pool.signing_key_path)},
        "server_venv": wr.WORKER_VENV,
        "poll_interval": 1,
        # Short, so that the schedd drill's outage is many query timeouts long (see that test).
        "query_timeout": QUERY_TIMEOUT,
        "queue_timeout": "5m",
        "server_start_timeout": "90s",
        "unknown_grace": "2m",
        "accounting_groups": {
            "student": "group_students",
            "guest": "group_students",
            "researcher": "group_researchers",
            "instructor": "group_researchers",
            "admin": "group_researchers",
        },
        "user_map": condor_pool.hub_user_map_settings,
    }
    site["profiles"] += drill_profiles()
    # A short grace for a server that stopped answering on its node (60 s by default), for the startd drill.
    hub = Hub(work, site, extra_args=[f"--HTCondorSpawner.unreachable_grace={UNREACHABLE_GRACE}"]).start()
    hub.hub_id = f"{socket.getfqdn()}:{work / 'state'}"
    yield hub
    hub.stop()
    hub.kill_servers()
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f'CondorhubHub == "{hub.hub_id}"')
    _restore_user_map(condor_pool, saved_map)
    shutil.rmtree(work, ignore_errors=True)


def _restore_user_map(pool, text: str) -> None:
    """The map as the session's fixture wrote it (dave and erin out again: other tests count on dave never
    having logged in)."""
    path = pool.user_map_path
    st = path.stat()
    path.write_text(text)
    stamp = max(int(time.time()), int(st.st_mtime) + 1)  # the schedd re-reads a map whose mtime changed
    os.utime(path, (stamp, stamp))
    UserMapWriter(path, pool.user_map_reconfig_command).reconfig()


def hub_jobs(hub: Hub) -> list[dict]:
    """This hub's jobs still in the queue (removed and completed ones aside)."""
    return [
        dict(ad)
        for ad in htcondor2.Schedd().query(
            f'CondorhubHub == "{hub.hub_id}" && JobStatus != 3 && JobStatus != 4',
            projection=["ClusterId", "JobStatus", "CondorhubUser"],
        )
    ]


def job_users(hub: Hub, status: int | None = None) -> list[str]:
    return sorted(j["CondorhubUser"] for j in hub_jobs(hub) if status is None or j["JobStatus"] == status)


def servers(client: HubClient) -> dict:
    return client.api("GET", "/user").json()["servers"]


def in_parallel(fn, items) -> dict:
    """``fn(item)`` for each item in threads (servers start at once, as a class's do); item → result."""
    results: dict = {}

    def run(item):
        try:
            results[item] = fn(item)
        except BaseException as err:  # re-raised below, in the test's thread
            results[item] = err

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for item, result in results.items():
        if isinstance(result, BaseException):
            raise AssertionError(f"{item}: {result}") from result
    return results


def log_since(hub: Hub, offset: int) -> str:
    return hub.log_file.read_text(errors="replace")[offset:]


def log_offset(hub: Hub) -> int:
    return len(hub.log_file.read_text(errors="replace"))


def stop_reason_on_form(client: HubClient) -> str:
    """The "Your last server stopped: …" notice of the spawn page, as the user reads it."""
    form = client.http.get(f"{client.url}/hub/spawn", timeout=30).text
    notice = re.search(r'class="alert alert-warning condorhub-last-stop"[^>]*>(.*?)</div>', form, re.S)
    assert notice, f"no stop reason on the spawn page: {form[-1500:]}"
    return html.unescape(notice.group(1))


# -- drill 1: the hub killed --------------------------------------------------------------------------


def test_hub_killed_with_servers_running_and_waiting_loses_none_and_leaves_no_orphan(hub):
    """SIGKILL to the hub while 3 servers run and 2 wait in the queue, then a restart.

    Scaled down from the issue's 10 running + 5 waiting to what the test pool and this 2-core machine hold:
    3 running (alice and carol on 1 CPU each, bob on both GPUs) and 2 waiting for a GPU (dave, the admin). The
    running ones answer through the restarted proxy with the login their browsers already had. A waiting
    server's spawn died with the hub (JupyterHub cannot resume a spawn across a restart): its job is removed
    at the restart, not left queued as an orphan that would take the next free GPU for a server nobody
    waits for, and its user reads why on the spawn page; started again, it waits and starts when bob frees
    the GPUs. Every job of the hub in the queue belongs to a server the hub lists, before and after.
    """
    clients = {u: login(hub, u) for u in USERS}
    running = {"alice": "cpu-small", "carol": "cpu-small", "bob": "gpu-2"}
    waiting = tuple(sorted(("dave", ADMIN)))
    started = in_parallel(lambda u: start_server(clients[u], u, running[u]), running)
    for user, events in started.items():
        assert events[-1].get("ready"), (user, messages(events))
        clients[user].wait_for_server(user)
    for user in waiting:
        assert clients[user].spawn_form({"profile": "gpu-1"}).status_code == 200
    wait_for("dave's and the admin's jobs to wait in the queue", lambda: job_users(hub, status=1) == list(waiting), timeout=60)
    assert job_users(hub, status=2) == sorted(running)

    os.kill(hub.proc.pid, signal.SIGKILL)
    hub.proc.wait(10)
    killed = time.monotonic()
    hub.start()
    hub_up = time.monotonic() - killed
    for user in running:
        clients[user].wait_for_server(user, timeout=60)
        assert servers(clients[user])[""]["ready"]
    all_reachable = time.monotonic() - killed
    wait_for(
        "the waiting servers' jobs to leave the queue",
        lambda: job_users(hub) == sorted(running),
        timeout=30,
        context=lambda: f"{hub_jobs(hub)}\n{hub.log_tail(40)}",
    )
    queue_clean = time.monotonic() - killed
    for user in waiting:
        assert not servers(clients[user])
        reason = stop_reason_on_form(clients[user])
        assert "The hub restarted while your server waited in HTCondor's queue" in reason, reason

    # Started again, they wait for the GPUs bob holds, and start once he stops.
    seen = {u: [] for u in waiting}
    readers = []
    for user in waiting:
        assert clients[user].spawn_form({"profile": "gpu-1"}).status_code == 200
        reader = threading.Thread(target=progress_events, args=(clients[user], user, 240, seen[user]))
        reader.start()
        readers.append(reader)
    wait_for("both to wait in the queue again", lambda: job_users(hub, status=1) == list(waiting), timeout=60)
    stop_server(clients["bob"], "bob")
    for reader in readers:
        reader.join(240)
    for user in waiting:
        assert seen[user] and seen[user][-1].get("ready"), (user, messages(seen[user]))
        clients[user].wait_for_server(user)
    for user in ("alice", "carol"):
        clients[user].wait_for_server(user)  # the servers that lived through the kill still answer
    assert job_users(hub, status=2) == sorted(["alice", "carol", *waiting])
    print(
        f"\nhub SIGKILL drill: hub answering {hub_up:.1f} s after the kill, all {len(running)} running servers "
        f"reachable at {all_reachable:.1f} s, the {len(waiting)} waiting servers' jobs gone at {queue_clean:.1f} s"
    )
    in_parallel(lambda u: stop_server(clients[u], u), ["alice", "carol", *waiting])
    assert job_users(hub) == []


# -- drill 2: the schedd stopped ----------------------------------------------------------------------

OUTAGE = 30


def test_schedd_stopped_drops_no_server_a_spawn_meanwhile_says_why_and_all_recovers(hub, condor_pool):
    """The schedd frozen (SIGSTOP) for 30 s while the hub polls, then resumed.

    The issue's drill is 2 minutes; in production that is 6 query timeouts (20 s each) and a fifth of the
    unknown grace (10 min). Here the query timeout is 3 s and the grace 2 min, so 30 s is 10 query
    timeouts: every poll cycle of the outage fails as in the 2-minute one, and a shorter test proves the
    same. Running servers stay listed and reachable throughout; a spawn during the outage fails at once with
    the schedd's silence named, leaves no job behind, and works once the schedd is back.
    """
    alice, carol, bob = (login(hub, u) for u in ("alice", "carol", "bob"))
    for client, user, profile in ((alice, "alice", "cpu-small"), (carol, "carol", "gpu-1")):
        assert start_server(client, user, profile)[-1].get("ready")
        client.wait_for_server(user)
    before = sorted((j["CondorhubUser"], j["ClusterId"]) for j in hub_jobs(hub))
    offset = log_offset(hub)
    pids = schedd_pids(condor_pool)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        assert bob.spawn_form({"profile": "cpu-small"}).status_code == 200
        events = progress_events(bob, "bob", timeout=60)
        failed_after = time.monotonic() - stopped
        assert events[-1].get("failed"), messages(events)
        assert f"the schedd did not confirm the submission within {QUERY_TIMEOUT} s" in events[-1]["message"]
        while time.monotonic() < stopped + OUTAGE:
            for client in (alice, carol):
                assert servers(client)[""]["ready"], "a server was dropped while the queue was unknown"
            time.sleep(1)
        assert "HTCondor queue unknown" in log_since(hub, offset)
        alice.wait_for_server("alice", timeout=10)  # the servers themselves never depended on the schedd
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    wait_for("the queue view to recover", lambda: "HTCondor queue answers again" in log_since(hub, offset), timeout=30)
    recovered = time.monotonic() - resumed
    for client, user in ((alice, "alice"), (carol, "carol")):
        assert servers(client)[""]["ready"]
        client.wait_for_server(user, timeout=10)
    # Bob's submission during the outage left nothing queued (its late commit, if any, removed), and the
    # running servers kept their jobs.
    wait_for("no job but the running servers'", lambda: job_users(hub) == ["alice", "carol"], timeout=30)
    assert sorted((j["CondorhubUser"], j["ClusterId"]) for j in hub_jobs(hub)) == before
    assert start_server(bob, "bob", "cpu-small")[-1].get("ready")
    bob.wait_for_server("bob")
    print(
        f"\nschedd SIGSTOP drill ({OUTAGE} s): spawn failed {failed_after:.1f} s into the outage, queue view "
        f"answering {recovered:.1f} s after SIGCONT"
    )
    in_parallel(lambda c: stop_server(*c), [(alice, "alice"), (carol, "carol"), (bob, "bob")])


# -- drill 3: the execute node's startd killed ---------------------------------------------------------


def node_processes(pool, predicate) -> list[int]:
    root = str(pool.root.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "root") == root and predicate(entry):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def _comm(entry: Path) -> str:
    return (entry / "comm").read_text().strip()


def _uid(entry: Path) -> int:
    return entry.stat().st_uid


def startd_back(pool, since: float) -> bool:
    """Whether a startd started after ``since`` advertises the node's partitionable slot with its GPUs free."""
    out = pool.run_in_root(
        ["condor_status", "-af", "DaemonStartTime", "SlotType", "GPUs"], check=False, timeout=20
    ).stdout.split()
    return len(out) >= 3 and out[1] == "Partitionable" and int(out[0]) > since and int(out[2]) == pool.num_gpus


def test_execute_node_startd_killed_stops_its_servers_with_the_reason_and_spares_the_login_node(hub, condor_pool):
    """The node dies under a batch server: its startd, starters and job processes killed with SIGKILL (the
    node's condor_master brings a fresh startd up, as a rebooted node would).

    The test pool has one execute node, so "other nodes' servers untouched" is shown with a login-node
    server: dave's keeps answering. alice's batch server is marked stopped with HTCondor's reason on her
    spawn page and its job leaves the queue; once the node is back she starts a new one there.
    """
    alice, dave = login(hub, "alice"), login(hub, "dave")
    assert start_server(alice, "alice", "cpu-small")[-1].get("ready")
    assert start_server(dave, "dave", "login-node")[-1].get("ready")
    alice.wait_for_server("alice")
    dave.wait_for_server("dave")
    (job,) = hub_jobs(hub)
    # The execute side only: the startd, its starters and the job (alice's processes but her shadow, which
    # belongs to the submit side; the test pool runs both in one root).
    victims = node_processes(
        condor_pool,
        lambda e: _comm(e) in {"condor_startd", "condor_starter"} or (_uid(e) == 10001 and _comm(e) != "condor_shadow"),
    )
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    killed, killed_at = time.monotonic(), time.time()
    wait_for(
        "the hub to mark alice's server stopped",
        lambda: not servers(alice),
        timeout=180,
        interval=1,
        context=lambda: f"{hub_jobs(hub)}\n{hub.log_tail(30)}",
    )
    noticed = time.monotonic() - killed
    reason = stop_reason_on_form(alice)
    assert f"job {job['ClusterId']}.0" in reason, reason
    wait_for("alice's job to leave the queue", lambda: not hub_jobs(hub), timeout=60)
    gone = time.monotonic() - killed
    assert servers(dave)[""]["ready"]
    dave.wait_for_server("dave", timeout=10)
    # The node is back (the master restarted its startd, with both GPUs free): a new server starts on it.
    wait_for(
        "a fresh startd with both GPUs",
        lambda: startd_back(condor_pool, killed_at),
        timeout=60,
        interval=1,
    )
    back = time.monotonic() - killed
    events = start_server(alice, "alice", "cpu-small")
    assert events[-1].get("ready"), messages(events)
    alice.wait_for_server("alice")
    print(
        f"\nstartd SIGKILL drill: server marked stopped after {noticed:.1f} s, its job gone after {gone:.1f} s, "
        f"the node's startd back after {back:.1f} s"
    )
    stop_server(alice, "alice")
    stop_server(dave, "dave")
