"""The shared queue view and what job ads mean (pure logic with a fake client; the real pool is in
test_condor_e2e.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from condorhub.spawner.condor.client import CondorClientError
from condorhub.spawner.condor.jobs import (
    COMPLETED,
    HELD,
    IDLE,
    REMOVED,
    RUNNING,
    SUSPENDED,
    TRANSFERRING_OUTPUT,
    Job,
    Phase,
    Request,
    queue_position,
    wait_reason,
)
from condorhub.spawner.condor.queue import HTCondorQueue, QueueUnavailable, find_orphans
from condorhub.spawner.condor.reconcile import job_ids_in_states

HUB = "hub.test:/var/lib/condorhub"


def ad(cluster, status=IDLE, hub=HUB, **extra) -> dict:
    return {"ClusterId": cluster, "ProcId": 0, "JobStatus": status, "CondorhubHub": hub, "QDate": 1000 + cluster, **extra}


class FakeClient:
    """Stands in for CondorClient: a list of job ads, counts calls, can fail or hang."""

    def __init__(self, ads=(), slots=()):
        self.ads = list(ads)
        self.slots = list(slots)
        self.queries: list[str] = []
        self.slot_queries = 0
        self.removed: list[tuple[list[str], str]] = []
        self.fail = False
        self.hang = threading.Event()  # cleared: hang; set: answer
        self.hang.set()

    def query_jobs(self, constraint, projection=()):
        self.queries.append(constraint)
        self.hang.wait()
        if self.fail:
            raise CondorClientError("schedd query failed: connection refused")
        return [dict(a) for a in self.ads]

    def query_slots(self, projection=()):
        self.slot_queries += 1
        return list(self.slots)

    def remove(self, job_ids, reason):
        if self.fail:
            raise CondorClientError("removing failed")
        self.removed.append((list(job_ids), reason))
        self.ads = [a for a in self.ads if f"{a['ClusterId']}.{a['ProcId']}" not in job_ids]
        return {}

    def submit(self, description):
        cluster = max([a["ClusterId"] for a in self.ads] or [0]) + 1
        self.ads.append(ad(cluster, hub=description["+CondorhubHub"].strip('"'), QDate=int(time.time())))
        return f"{cluster}.0"


@pytest.fixture
async def make_queue():
    made = []

    def make(client, **traits):
        settings = {"hub_id": HUB, "poll_interval": 0.2, "min_query_interval": 0.05, "query_timeout": 0.5}
        settings.update(traits)
        queue = HTCondorQueue(client=client, **settings)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.close()


# -- job ads ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, phase",
    [
        (IDLE, Phase.queued),
        (RUNNING, Phase.running),
        (SUSPENDED, Phase.running),
        (TRANSFERRING_OUTPUT, Phase.running),
        (HELD, Phase.held),
        (REMOVED, Phase.ended),
        (COMPLETED, Phase.ended),
    ],
)
def test_held_suspended_and_transferring_jobs_are_not_gone(status, phase):
    assert Job.from_ad(ad(7, status)).phase == phase


def test_node_and_address_come_from_the_job_ad():
    job = Job.from_ad(ad(3, RUNNING, RemoteHost="slot1_1@gpu07.example.org",
                         StartdIpAddr="<10.1.2.3:9618?addrs=10.1.2.3-9618&alias=gpu07>"))
    assert (job.id, job.node, job.node_address) == ("3.0", "gpu07.example.org", "10.1.2.3")
    assert Job.from_ad(ad(4, RUNNING, RemoteHost="slot1@vm")).node_address == "vm"


def test_end_reasons_are_words_for_the_user():
    assert "HTCondor held the job: disk quota" in Job.from_ad(ad(1, HELD, HoldReason="disk quota")).end_reason()
    assert "removed from the queue: via condor_rm" in Job.from_ad(ad(1, REMOVED, RemoveReason="via condor_rm")).end_reason()
    assert "ended with code 3" in Job.from_ad(ad(1, COMPLETED, ExitCode=3)).end_reason()


def test_queue_position_counts_earlier_jobs_of_the_same_kind():
    gpu = [Job.from_ad(ad(c, IDLE, RequestGpus=1)) for c in (1, 2, 3)]
    cpu = Job.from_ad(ad(4, IDLE, RequestGpus=0))
    assert [queue_position(j, gpu + [cpu]) for j in gpu] == [0, 1, 2]
    assert queue_position(cpu, gpu + [cpu]) == 0


PARTITIONABLE = {
    "Machine": "gpu01",
    "SlotType": "Partitionable",
    "TotalSlotGPUs": 2,
    "GPUs": 0,
    "Cpus": 4,
    "Memory": 16000,
    "GPUs_Capability": 7.5,
    "GPUs_GlobalMemoryMb": 16000,
}


@pytest.mark.parametrize(
    "request_, slot, expected",
    [
        (Request(gpus=1), {}, "waiting for 1 GPU to become free: 0 of the pool's 2 GPUs are free"),
        (Request(gpus=4), {}, "no node in the pool has 4 GPUs (the largest has 2)"),
        (Request(gpus=1, gpu_min_capability=8.0), {}, "no GPU in the pool has compute capability 8 or more (the best has 7.5)"),
        (Request(gpus=1, gpu_min_memory_mb=40000), {}, "no GPU in the pool has 40000 MB of memory or more"),
        (Request(gpus=1, cpus=8), {"GPUs": 1}, "waiting for 8 free CPU core(s) on one node (at most 4 free)"),
        (Request(gpus=1, memory_mb=32000), {"GPUs": 1}, "waiting for 32000 MB of free memory"),
        (Request(gpus=1), {"GPUs": 1}, "the resources are free; waiting for HTCondor's next matchmaking cycle"),
    ],
)
def test_why_a_job_waits_is_read_from_the_slots(request_, slot, expected):
    assert expected in wait_reason(request_, [{**PARTITIONABLE, **slot}])


def test_no_slots_at_all_is_explained():
    assert "no execute node has reported" in wait_reason(Request(), [])


def test_dynamic_slots_are_counted_in_their_parent():
    dynamic = {"Machine": "gpu01", "SlotType": "Dynamic", "GPUs": 1, "Cpus": 1, "Memory": 100}
    assert "0 of the pool's 2 GPUs are free" in wait_reason(Request(gpus=1), [PARTITIONABLE, dynamic, dynamic])


# -- the shared view ----------------------------------------------------------------------------------


async def test_one_schedd_query_per_cycle_for_all_servers(make_queue):
    client = FakeClient([ad(c, RUNNING) for c in range(1, 51)])
    queue = make_queue(client)
    for c in range(1, 51):
        queue.claim(f"{c}.0", f"user{c}/")
    # 50 servers poll at the same moment, twice: the view answers all of them from one query each time.
    await asyncio.gather(*(queue.fresh(max_age=0) for _ in range(50)))
    assert len(client.queries) == 1
    await asyncio.gather(*(queue.fresh(max_age=10) for _ in range(50)))
    assert len(client.queries) == 1  # fresh enough: no query at all
    assert all(queue.job(f"{c}.0").phase == Phase.running for c in range(1, 51))
    # Once all claimed jobs are seen running, only this hub's jobs are asked for (the idle jobs of the
    # whole queue only while some of ours wait or were just submitted).
    assert "JobStatus == 1" in client.queries[0]
    await queue.next_refresh()
    assert client.queries[-1] == f'CondorhubHub == "{HUB}"'


async def test_the_loop_queries_once_per_interval_while_jobs_are_claimed(make_queue):
    client = FakeClient([ad(1, RUNNING)])
    queue = make_queue(client, poll_interval=0.1)
    queue.claim("1.0", "alice/")
    queue.start()
    await asyncio.sleep(0.55)
    assert 3 <= len(client.queries) <= 7
    queue.release("1.0")
    await asyncio.sleep(0.15)
    idle_count = len(client.queries)
    await asyncio.sleep(0.4)
    assert len(client.queries) == idle_count  # nothing claimed: no queries


async def test_other_hubs_jobs_are_not_ours_but_idle_ones_count_as_ahead(make_queue):
    client = FakeClient([ad(1, IDLE, hub="other", RequestGpus=1), ad(2, IDLE, RequestGpus=1), ad(3, RUNNING, hub="other")])
    queue = make_queue(client)
    queue.claim("2.0", "alice/")
    await queue.fresh(max_age=0)
    assert set(queue.jobs) == {"2.0"}
    assert queue.position("2.0") == 1
    # An idle job of ours: the next query also asks for idle jobs queued before it.
    await queue.next_refresh()
    assert "JobStatus == 1" in client.queries[-1] and "QDate <= 1002" in client.queries[-1]
    assert client.slot_queries >= 1


async def test_a_failed_query_makes_the_view_unknown_not_empty(make_queue):
    client = FakeClient([ad(1, RUNNING)])
    queue = make_queue(client)
    queue.claim("1.0", "alice/")
    await queue.fresh(max_age=0)
    client.fail = True
    with pytest.raises(QueueUnavailable, match="connection refused"):
        await queue.fresh(max_age=0)
    assert queue.unknown and queue.unknown_for() >= 0
    assert queue.job("1.0") is not None  # the last known state is kept
    client.fail = False
    await queue.fresh(max_age=0)
    assert not queue.unknown and queue.unknown_for() == 0


async def test_a_hung_schedd_times_out_and_never_piles_up_queries(make_queue):
    client = FakeClient([ad(1, RUNNING)])
    queue = make_queue(client, query_timeout=0.2)
    queue.claim("1.0", "alice/")
    client.hang.clear()
    try:
        with pytest.raises(QueueUnavailable, match="no answer within 0.2 s"):
            await queue.fresh(max_age=0)
        with pytest.raises(QueueUnavailable, match="previous schedd query has not returned"):
            await queue.fresh(max_age=0)
        assert len(client.queries) == 1  # the second refresh did not start another query
    finally:
        client.hang.set()
    await asyncio.sleep(0.05)
    await queue.fresh(max_age=0)
    assert not queue.unknown


async def test_failed_removals_are_retried_until_the_schedd_answers(make_queue):
    client = FakeClient([ad(1, RUNNING)])
    queue = make_queue(client)
    queue.claim("1.0", "alice/")
    client.fail = True
    assert await queue.remove(["1.0"], "stopped") is False
    assert queue.pending_removals == {"1.0": "stopped"}
    queue.release("1.0")
    client.fail = False
    await queue.next_refresh()  # the loop retries after its refresh
    for _ in range(20):
        if not queue.pending_removals:
            break
        await asyncio.sleep(0.05)
    assert client.removed == [(["1.0"], "stopped")]
    assert queue.pending_removals == {}


async def test_reconcile_removes_only_old_unowned_jobs_of_this_hub(make_queue):
    now = int(time.time())
    client = FakeClient(
        [
            ad(1, RUNNING, QDate=now - 3600),  # in the hub database: kept
            ad(2, RUNNING, QDate=now - 3600),  # claimed by a spawn in progress: kept
            ad(3, RUNNING, QDate=now - 3600),  # nobody's: removed
            ad(4, IDLE, QDate=now - 5),  # nobody's but just submitted: kept
            ad(5, RUNNING, hub="other", QDate=now - 3600),  # another hub's: never touched
            ad(6, REMOVED, QDate=now - 3600),  # already leaving
        ]
    )
    queue = make_queue(client, orphan_min_age=60)
    queue.known_job_ids = lambda: {"1.0"}
    queue.claim("2.0", "bob/")
    await queue.fresh(max_age=0)  # the first refresh runs the sweep
    assert [ids for ids, _ in client.removed] == [["3.0"]]
    assert "no server of this hub owns" in client.removed[0][1]


async def test_reconcile_waits_for_the_hub_database(make_queue):
    client = FakeClient([ad(3, RUNNING, QDate=1)])
    queue = make_queue(client, orphan_min_age=0)
    database = {"open": False}
    queue.known_job_ids = lambda: {"1.0"} if database["open"] else None
    await queue.fresh(max_age=0)
    assert client.removed == []
    database["open"] = True
    await queue.next_refresh()
    assert [ids for ids, _ in client.removed] == [["3.0"]]


def test_find_orphans_orders_and_filters():
    jobs = [Job.from_ad(ad(c, RUNNING, QDate=0)) for c in (10, 2, 3)]
    assert find_orphans(jobs, {"3.0"}, now=1000, min_age=10) == ["2.0", "10.0"]
    assert find_orphans(jobs, set(), now=5, min_age=10) == []


def test_job_ids_are_found_in_wrapped_and_plain_states():
    states = [{"profile": {}, "child_state": {"job_id": "12.0"}}, {"job_id": "13.0"}, None, {"child_state": {}}]
    assert job_ids_in_states(states) == {"12.0", "13.0"}
