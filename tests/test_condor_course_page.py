"""The course page with GPU servers on a real HTCondor pool: carol sees alice's server queued in HTCondor (with
its job) and can stop it while it waits, then sees it running on the node HTCondor runs the job on, and stops
it; each time the job leaves the queue.

Real hub + proxy + OpenLDAP + the test pool (two simulated GPUs; bob's 2-GPU server holds both, so alice's
1-GPU server has to wait). The page reads what the spawners know; the test checks it against the schedd.
"""

from __future__ import annotations

import html
import re
import shutil
import socket
import time

import htcondor2
import pytest

from devstack import node_root as wr
from tests.support.courses import ensure_course_account
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

COURSE = {"slug": "dl-intro", "title": "Deep learning for physicists", "students_group": "students",
          "instructors_group": "instructors"}
GPU_PROFILES = [
    {"slug": "gpu-1", "kind": "condor", "display_name": "1 GPU", "roles": ["student", "researcher"], "cpus": 1,
     "memory": "1G", "runtime": "1h", "gpus": 1},
    {"slug": "gpu-2", "kind": "condor", "display_name": "2 GPUs", "roles": ["researcher"], "cpus": 1,
     "memory": "1G", "runtime": "1h", "gpus": 2},
]


@pytest.fixture(scope="module")
def hub(slapd, condor_pool):
    work = scratch_dir("condorhub-condor-course-page-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    # Under the folder the pool's node mounts, so the servers there can pull the course.
    courses_dir = condor_pool.courses_dir / work.name
    site["hub"]["courses_dir"] = str(courses_dir)
    site["courses"] = [COURSE]
    site["htcondor"] = {
        "condor_config": str(condor_pool.condor_config_path),
        "token_file": str(condor_pool.token_path),
        "user_tokens": {"signing_key_file": str(condor_pool.signing_key_path)},
        "server_venv": wr.WORKER_VENV,
        "poll_interval": 1,
        "query_timeout": 10,
        "queue_timeout": "5m",
        "accounting_groups": {"student": "group_students", "researcher": "group_researchers"},
    }
    site["profiles"] += GPU_PROFILES
    ensure_course_account()
    hub = Hub(work, site).start()
    hub.hub_id = f"{socket.getfqdn()}:{work / 'state'}"  # the CondorhubHub attribute of this hub's jobs
    yield hub
    print(hub.log_tail(80))  # shown by pytest when a test of this module failed
    hub.stop()
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f'CondorhubHub == "{hub.hub_id}"')
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(courses_dir, ignore_errors=True)


def login(hub: Hub, name: str) -> HubClient:
    client = hub.client()
    assert client.login(name, f"{name}-pw", follow=False).status_code == 302
    return client


def wait_for(what: str, predicate, timeout: float = 120, context=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} {context()}")
        time.sleep(1)


def alice_row(carol: HubClient, hub: Hub) -> dict:
    """alice's row of the course page as carol gets it: state and the cells' text."""
    page = carol.http.get(f"{hub.url}/hub/courses/dl-intro", timeout=15)
    assert page.status_code == 200, page.text[-1000:]
    row = re.search(r'<tr class="condorhub-student" data-user="alice" data-state="(\w+)">(.*?)</tr>', page.text, re.S)
    assert row, page.text[-3000:]
    cells = [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(2), re.S)]
    return {"state": row.group(1), "cells": cells}


def alice_jobs(hub: Hub) -> list[dict]:
    ads = htcondor2.Schedd().query(
        f'CondorhubHub == "{hub.hub_id}" && CondorhubUser == "alice" && JobStatus != 3 && JobStatus != 4',
        projection=["ClusterId", "ProcId", "JobStatus", "RemoteHost"],
    )
    return [dict(ad) for ad in ads]


def test_carol_sees_alices_gpu_server_queued_then_running_on_its_node_and_stops_it_each_time(hub):
    bob = login(hub, "bob")
    assert bob.spawn_form({"profile": "gpu-2"}).status_code == 200
    bob.wait_for_server("bob", timeout=180)  # both GPUs are bob's now

    alice = login(hub, "alice")
    assert alice.spawn_form({"profile": "gpu-1"}).status_code == 200
    (job,) = wait_for("alice's job in the queue", lambda: alice_jobs(hub), timeout=60)
    job_id = f"{job['ClusterId']}.{job['ProcId']}"
    assert job["JobStatus"] == 1  # idle: no GPU free

    carol = login(hub, "carol")
    queued = wait_for("the page to show alice queued", lambda: (r := alice_row(carol, hub))["state"] == "pending" and r)
    assert queued["cells"][1] == f"queued in HTCondor (job {job_id})", queued
    assert queued["cells"][2] == "1 GPU" and queued["cells"][3] == "" and "UTC" in queued["cells"][4], queued

    # Stop while it waits (the page offers it for a queued server too): the job leaves the queue.
    stop = carol.api("DELETE", "/users/alice/server", timeout=60)
    assert stop.status_code in (202, 204), stop.text
    wait_for("the queued job to be removed", lambda: not alice_jobs(hub), timeout=60)
    wait_for("the page to show alice stopped", lambda: alice_row(carol, hub)["state"] == "stopped", timeout=60)

    # alice asks again; this time she gets the GPU once bob is done.
    assert alice.spawn_form({"profile": "gpu-1"}).status_code == 200
    (job,) = wait_for("alice's second job in the queue", lambda: alice_jobs(hub), timeout=60)
    job_id = f"{job['ClusterId']}.{job['ProcId']}"

    # bob's server goes, the GPUs free up, alice's job runs and her server starts on the node.
    assert bob.api("DELETE", "/users/bob/server", timeout=60).status_code in (202, 204)
    alice.wait_for_server("alice", timeout=180)
    (running_job,) = alice_jobs(hub)
    node = str(running_job["RemoteHost"]).rpartition("@")[2]
    assert node
    running = wait_for("the page to show alice running", lambda: (r := alice_row(carol, hub))["state"] == "running" and r)
    assert running["cells"][1] == "running" and running["cells"][2] == "1 GPU", running
    assert running["cells"][3] == f"{node} (job {job_id})", running

    # The page's Stop: the hub's REST API as carol; the job leaves the queue.
    stop = carol.api("DELETE", "/users/alice/server", timeout=60)
    assert stop.status_code in (202, 204), stop.text
    wait_for("alice's server to stop", lambda: alice.api("GET", "/users/alice").json()["servers"] == {}, timeout=90)
    wait_for("alice's job to leave the queue", lambda: not alice_jobs(hub), timeout=60)
    assert alice_row(carol, hub)["state"] == "stopped"
