"""The hub's HTCondor worker processes (:class:`condorhub.spawner.condor.client.WorkerLane`) against the
real pool: a call whose caller gave up (JupyterHub's start timeout, a hub shutdown, a `wait_for` around it)
must never hand its answer to the next caller, who may be another user.

The schedd is stopped with SIGSTOP, as in test_condor_e2e's hung-schedd test: a call then hangs inside the
bindings until the schedd is resumed, which is exactly when a cancelled caller's answer arrives late.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import htcondor2
import pytest

from condorhub.spawner.condor.client import WorkerLane
from condorhub.spawner.condor.queue import HTCondorQueue

pytestmark = [pytest.mark.condor]


def schedd_pids(pool) -> list[int]:
    """The pool's condor_schedd processes (they run chrooted into the pool's root)."""
    root = str(pool.root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "condor_schedd" \
                    and os.readlink(entry / "root") == root:
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


@contextmanager
def stopped_schedd(pool):
    pids = schedd_pids(pool)
    assert pids, "the pool has no schedd process"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def held_job(user: str, hub_id: str) -> dict[str, str]:
    """A job of ``user`` that never runs (held), marked as this test hub's like the spawner's jobs."""
    return {
        "executable": "/bin/sleep",
        "arguments": "600",
        "hold": "true",
        "transfer_executable": "false",
        "should_transfer_files": "NO",
        "initialdir": "/tmp",
        "+Owner": f'"{user}"',
        "+CondorhubHub": f'"{hub_id}"',
        "+CondorhubUser": f'"{user}"',
    }


def jobs_of(hub_id: str, *, history: bool = False) -> list[dict]:
    """This test hub's jobs as the schedd lists them (its queue, or its history of jobs that left it)."""
    schedd = htcondor2.Schedd()
    projection = ["ClusterId", "ProcId", "Owner", "CondorhubUser", "JobStatus"]
    constraint = f'CondorhubHub == "{hub_id}"'
    if history:
        ads = schedd.history(constraint, projection=projection)
    else:
        ads = schedd.query(constraint, projection=projection)
    return [{k: ad.get(k) for k in projection} for ad in ads]


@pytest.fixture
async def queue(condor_pool):
    made = HTCondorQueue(
        hub_id=f"condorhub-test-lanes-{uuid.uuid4().hex[:8]}",
        condor_config=str(condor_pool.condor_config_path),
        query_timeout=15,
    )
    yield made
    await made.close()
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f'CondorhubHub == "{made.hub_id}"')


def lane_settings(pool) -> dict:
    return {"condor_config": str(pool.condor_config_path)}


async def test_a_cancelled_submit_never_answers_the_next_users_submit(queue, condor_pool, caplog):
    caplog.set_level(logging.DEBUG)
    await queue._lane("action").call("ping", timeout=60)  # the worker is up (bindings imported)
    with stopped_schedd(condor_pool):
        # Alice's spawn gives up while the schedd does not answer (JupyterHub's start timeout cancels it).
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(queue.submit(held_job("alice", queue.hub_id)), 2)
        # Bob's spawn comes while alice's submission still hangs in the worker.
        bob = asyncio.ensure_future(queue.submit(held_job("bob", queue.hub_id)))
        await asyncio.sleep(1)
        assert not bob.done()
    t0 = time.monotonic()
    bob_job = await asyncio.wait_for(bob, 30)
    print(f"bob's submission answered {time.monotonic() - t0:.2f} s after the schedd resumed")

    cluster = int(bob_job.split(".")[0])
    mine = [j for j in jobs_of(queue.hub_id) if j["ClusterId"] == cluster]
    assert mine and mine[0]["Owner"] == "bob" and mine[0]["CondorhubUser"] == "bob", (bob_job, jobs_of(queue.hub_id))

    # Alice's submission reached the schedd once it resumed; its late answer went to nobody, and the hub
    # removed the job nobody waits for instead of leaving it queued as alice.
    deadline = time.monotonic() + 30
    while any(j["CondorhubUser"] == "alice" and j["JobStatus"] != 3 for j in jobs_of(queue.hub_id)):
        assert time.monotonic() < deadline, f"alice's abandoned job is still queued: {jobs_of(queue.hub_id)}"
        await asyncio.sleep(0.5)
    removed = [j for j in jobs_of(queue.hub_id, history=True) if j["CondorhubUser"] == "alice"]
    assert removed and removed[0]["JobStatus"] == 3, removed
    alice_job = f"{removed[0]['ClusterId']}.{removed[0]['ProcId']}"
    assert alice_job != bob_job
    print(f"alice's late job {alice_job} removed {time.monotonic() - t0:.2f} s after the schedd resumed")
    assert f"HTCondor job {alice_job} was submitted after its spawn had given up" in caplog.text
    assert "Dropping the answer to request" in caplog.text
    # Bob's job is untouched.
    assert [j["Owner"] for j in jobs_of(queue.hub_id) if j["JobStatus"] != 3] == ["bob"]


async def test_a_cancel_while_sending_does_not_shift_the_answers(queue, condor_pool):
    bob_job = await queue.submit(held_job("bob", queue.hub_id))
    lane = WorkerLane("test", lane_settings(condor_pool))
    try:
        await lane.call("ping", timeout=60)
        # A request far bigger than the pipe's buffer: its caller is cancelled while it is being written.
        big = asyncio.ensure_future(lane.call("ping", "x" * 64_000_000, timeout=60))
        deadline = time.monotonic() + 10
        while True:
            worker = lane._worker
            transport = worker.proc.stdin.transport if worker is not None and worker.busy is not None else None
            if transport is not None and transport.get_write_buffer_size() > 0:
                break
            assert time.monotonic() < deadline, "the big request was never seen being sent"
            await asyncio.sleep(0)
        unsent = transport.get_write_buffer_size()
        big.cancel()
        with pytest.raises(asyncio.CancelledError):
            await big
        print(f"cancelled with {unsent / 1e6:.1f} MB of the request still unsent")
        answer = await lane.call("query_jobs", f'CondorhubHub == "{queue.hub_id}"', timeout=30)
        assert isinstance(answer, list), f"the next caller got someone else's answer: {answer!r}"
        assert [f"{a['ClusterId']}.{a['ProcId']}" for a in answer] == [bob_job]
        assert (await lane.call("ping", timeout=30)) == lane._worker.proc.pid
    finally:
        lane.close()
        await lane.wait_closed()


async def test_a_worker_stuck_after_a_cancel_is_replaced_not_waited_for(queue, condor_pool, caplog):
    caplog.set_level(logging.DEBUG)
    lane = WorkerLane("test", lane_settings(condor_pool))
    try:
        stuck_pid = await lane.call("ping", timeout=60)
        with stopped_schedd(condor_pool):
            sent = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(lane.call("query_jobs", "true", timeout=4), 1)
            # The next caller does not wait behind the hung call: a fresh process answers at once.
            t0 = time.monotonic()
            pid = await lane.call("ping", timeout=30)
            waited = time.monotonic() - t0
            print(f"next call answered by a fresh worker in {waited:.2f} s while the old one hangs")
            assert pid != stuck_pid and waited < 5
            assert alive(stuck_pid)
            # The stuck one is killed once the abandoned request is past its deadline (and grace).
            deadline = time.monotonic() + 4 * 2 + 5
            while alive(stuck_pid):
                assert time.monotonic() < deadline, "the stuck worker was never killed"
                await asyncio.sleep(0.2)
            print(f"the stuck worker was killed {time.monotonic() - sent:.1f} s after the abandoned call was sent")
            assert "past its deadline; killed" in caplog.text
        answer = await lane.call("query_jobs", f'CondorhubHub == "{queue.hub_id}"', timeout=30)
        assert answer == []
    finally:
        lane.close()
        await lane.wait_closed()
