"""The spawn form tells, before Start, how busy the real pool is: free GPUs, and that a GPU server would
queue while both simulated GPUs are taken (with the servers already waiting). The hub's home page then shows
a running HTCondor server's profile, node, job id and the time left before its runtime limit, counting down
in the browser, with the warning before the limit.

Real components only: the session's HTCondor pool (two simulated GPUs), OpenLDAP and a hub subprocess behind
the proxy. Both GPUs are taken by an ordinary 2-GPU job of bob's (as a researcher's batch job would take them),
alice's 1-GPU server waits in the queue, and bob opens the form.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time

import htcondor2
import pytest

from devstack import node_root as wr
from tests.support.browser import chromium_page, screenshot
from tests.support.hub import Hub, demo_site
from tests.support.scratch import scratch_dir
from tests.test_condor_e2e import (
    condor_profiles,
    hub_jobs,
    login,
    messages,
    schedd_pids,
    start_server,
    stop_server,
    wait_for,
)

pytestmark = [pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap, pytest.mark.browser]


@pytest.fixture(scope="module")
def hub(slapd, condor_pool):
    work = scratch_dir("condorhub-form-hub-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
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
    site["profiles"] += condor_profiles()
    # The form's view of the pool is reused for 2 s here (10 s by default), so the test sees a change soon; the
    # home page warns from an hour before the limit (15 min by default), so a 1 h server is warned about at once.
    hub = Hub(work, site, extra_args=["--PoolStatus.max_age=2", "--ProfileSpawner.limit_warning=3600"]).start()
    hub.hub_id = f"{_fqdn()}:{work / 'state'}"
    yield hub
    hub.stop()
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f'CondorhubHub == "{hub.hub_id}"')
    shutil.rmtree(work, ignore_errors=True)


def _fqdn() -> str:
    import socket

    return socket.getfqdn()


def busy_line(form: str, slug: str) -> str:
    """The form's busy-ness sentence for one profile, after its class (whether the server would wait)."""
    match = re.search(rf'<small class="condorhub-busy ([^"]+)" data-profile="{re.escape(slug)}">([^<]*)</small>', form)
    assert match, f"no pool status for {slug} in the form:\n{form[-3000:]}"
    return f"{match.group(1).split()[0]}: {match.group(2)}"


@pytest.fixture
def both_gpus_taken(condor_pool, ldap_home_base):
    """bob's ordinary batch job holding both simulated GPUs (submitted as the hub submits, Owner = bob)."""
    schedd = htcondor2.Schedd()
    cluster = schedd.submit(
        htcondor2.Submit(
            {
                "executable": "/bin/sleep",
                "arguments": "600",
                "+Owner": '"bob"',
                "accounting_group": "group_researchers",
                "accounting_group_user": "bob",
                "request_gpus": "2",
                "request_cpus": "1",
                "request_memory": "64M",
                "initialdir": str(ldap_home_base / "bob"),  # the submitter's cwd does not exist on the node
                "output": "/dev/null",
                "error": "/dev/null",
                "should_transfer_files": "NO",
                "transfer_executable": "false",
            }
        )
    ).cluster()
    def ad() -> dict:
        ads = schedd.query(f"ClusterId == {cluster}", projection=["JobStatus", "HoldReason", "LastRejMatchReason"])
        return dict(ads[0]) if ads else {}

    try:
        wait_for("bob's 2-GPU job to run", lambda: ad().get("JobStatus") == 2, timeout=90, context=lambda: str(ad()))
        yield cluster
    finally:
        schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")


def test_the_form_shows_free_gpus_and_then_that_a_gpu_server_would_wait(hub, condor_pool, request):
    bob = login(hub, "bob")
    started = time.monotonic()
    form = bob.http.get(f"{hub.url}/hub/spawn", timeout=30).text
    print(f"spawn form, pool asked: {time.monotonic() - started:.2f} s")
    started = time.monotonic()
    bob.http.get(f"{hub.url}/hub/spawn", timeout=30)
    print(f"spawn form, cached pool status: {time.monotonic() - started:.2f} s")
    # What each profile gives, its runtime limit written as people write it.
    assert "(1 CPU, 1G memory, 1 GPU, runs at most 1 h)" in form
    assert busy_line(form, "gpu-1") == "condorhub-free: 2 of 2 GPUs free, room for 2 more servers like this."
    assert busy_line(form, "gpu-2").startswith("condorhub-free: 2 of 2 GPUs free, room for 1 more server")

    request.getfixturevalue("both_gpus_taken")
    # alice's 1-GPU server waits for a GPU in the queue.
    alice = login(hub, "alice")
    assert alice.spawn_form({"profile": "gpu-1"}).status_code == 200
    wait_for("alice's server job to queue", lambda: [j for j in hub_jobs(hub, 'CondorhubUser == "alice"')
                                                    if j["JobStatus"] == 1], timeout=60)
    try:
        waiting = "condorhub-would-wait: No free GPU now: 1 server waiting; your server will queue."
        seen: list[str] = []

        def form_says_wait() -> bool:
            page = bob.http.get(f"{hub.url}/hub/spawn", timeout=30).text
            seen[:] = [busy_line(page, slug) for slug in ("cpu", "gpu-1", "gpu-2")]
            return seen[1] == waiting

        wait_for("the form to say the GPU profile would wait", form_says_wait, timeout=30, interval=1,
                 context=lambda: f"{seen}\n{hub.log_tail(30)}")
        assert seen[2] == waiting
        # The CPU profile still starts at once: no server waits for a CPU-only slot.
        assert seen[0].startswith("condorhub-free: Free now, room for"), seen
        with chromium_page() as page:  # as bob sees it (logging in without a server lands on the form)
            page.goto(f"{hub.url}/hub/login")
            page.fill("input[name=username]", "bob")
            page.fill("input[name=password]", "bob-pw")
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_selector(".condorhub-busy[data-profile=gpu-1]", timeout=60_000)
            assert page.locator(".condorhub-busy[data-profile=gpu-1]").inner_text() == waiting.split(": ", 1)[1]
            screenshot(page, "spawn-form-pool-busy")
    finally:
        stop_server(alice, "alice")


def test_the_home_page_shows_the_servers_job_node_and_counts_down_to_its_runtime_limit(hub):
    alice = login(hub, "alice")
    events = start_server(alice, "alice", "cpu")
    assert events[-1].get("ready"), messages(events)
    try:
        (job,) = hub_jobs(hub, 'CondorhubUser == "alice"')
        job_id = f"{job['ClusterId']}.{job['ProcId']}"
        node = next(m for m in messages(events) if m.startswith("Running on ")).split()[2]
        with chromium_page() as page:
            page.goto(f"{hub.url}/hub/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "alice-pw")
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url("**/user/alice/**", timeout=60_000)
            page.goto(f"{hub.url}/hub/home")
            box = "#condorhub-server-status .condorhub-server"
            page.wait_for_selector(box, timeout=30_000)
            assert page.inner_text(f"{box} .condorhub-server-profile") == "CPU batch"
            assert page.inner_text(f"{box} .condorhub-server-job") == job_id
            assert page.inner_text(f"{box} .condorhub-server-node") == node
            assert page.inner_text(f"{box} .condorhub-server-state") == "running"
            first = page.inner_text(f"{box} td .condorhub-time-left")
            # The runtime limit is 1 h from the job's start: under an hour left, counting down each second.
            assert re.fullmatch(r"(59|[1-5]\d|\d) min \d+ s", first), first
            time.sleep(2.5)
            assert page.inner_text(f"{box} td .condorhub-time-left") != first
            # limit_warning is 1 h here: the warning is up, with the same countdown.
            warning = page.locator(f"{box} .condorhub-limit-warning")
            assert warning.is_visible()
            assert "reaches its runtime limit in" in warning.inner_text() and "Save your work" in warning.inner_text()
            screenshot(page, "home-server-status")
    finally:
        stop_server(alice, "alice")


def test_a_pool_that_does_not_answer_leaves_the_form_working_and_says_so(hub, condor_pool):
    bob = login(hub, "bob")
    time.sleep(2.5)  # past PoolStatus.max_age (2 s here): the next form asks the pool again
    pids = schedd_pids(condor_pool)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # the schedd query now hangs
    try:
        started = time.monotonic()
        page = bob.http.get(f"{hub.url}/hub/spawn", timeout=30)
        took = time.monotonic() - started
        assert page.status_code == 200
        unknown = "condorhub-pool-unknown: Pool status unknown (the pool did not answer in time); you can "
        assert busy_line(page.text, "gpu-1").startswith(unknown), busy_line(page.text, "gpu-1")
        # Within PoolStatus.timeout (3 s) and a little: the form never waits for the pool's own timeouts.
        assert took < 6, f"the form took {took:.1f} s"
        print(f"spawn form with a hung schedd: {took:.2f} s")
        assert 'value="gpu-1"' in page.text and 'value="cpu"' in page.text  # every profile can still be chosen
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    # The pool answers again: the form shows its status again (after max_age).
    wait_for(
        "the form to show the pool's status again",
        lambda: "condorhub-free" in busy_line(bob.http.get(f"{hub.url}/hub/spawn", timeout=30).text, "gpu-1"),
        timeout=60,
        interval=1,
    )
