"""The spawn form's pool busy-ness: slot ads → what a person reads, and one cached query for a whole class
(pure logic with a fake client; the real pool is in test_spawn_form_pool.py)."""

from __future__ import annotations

import asyncio
import threading
import time

from condorhub.spawner.choice import POOL_UNKNOWN, ProfileLoad, format_duration, profile_summary, render_form
from condorhub.spawner.condor.jobs import IDLE, RUNNING, Job, Request
from condorhub.spawner.condor.pool_status import PoolSnapshot, PoolStatus, busyness, gpu_counts, slots_fitting
from condorhub.spawner.condor.queue import HTCondorQueue
from condorhub.spawner.profiles import as_profile

HUB = "hub.test:/var/lib/condorhub"
ONE_GPU = Request(cpus=1, memory_mb=1024, gpus=1)
TWO_GPUS = Request(cpus=1, memory_mb=1024, gpus=2)
CPU = Request(cpus=2, memory_mb=4096)


def pslot(gpus_free=2, gpus_total=2, cpus=8, memory=16384, **extra) -> dict:
    """A partitionable slot as the collector lists it: Cpus/Memory/GPUs are what is still unclaimed."""
    return {"Name": "slot1@gpu01", "Machine": "gpu01", "SlotType": "Partitionable", "State": "Unclaimed",
            "Cpus": cpus, "Memory": memory, "GPUs": gpus_free, "TotalSlotGPUs": gpus_total, **extra}


def dslot(gpus=1) -> dict:
    return {"Name": "slot1_1@gpu01", "Machine": "gpu01", "SlotType": "Dynamic", "State": "Claimed", "Cpus": 1,
            "Memory": 1024, "GPUs": gpus}


def waiting_server(cluster: int, gpus: int = 1) -> Job:
    return Job.from_ad({"ClusterId": cluster, "ProcId": 0, "JobStatus": IDLE, "RequestGpus": gpus, "CondorhubHub": HUB})


def test_both_gpus_taken_says_the_gpu_profile_will_queue_and_how_many_wait():
    snapshot = PoolSnapshot([pslot(gpus_free=0, cpus=6), dslot(), dslot()], [waiting_server(7), waiting_server(8)])
    busy = busyness(ONE_GPU, snapshot)
    assert busy.would_wait and (busy.free_gpus, busy.total_gpus, busy.waiting) == (0, 2, 2)
    assert busy.message == "No free GPU now: 2 servers waiting; your server will queue."
    # The CPU profile still fits and is not held up by servers waiting for GPUs.
    cpu = busyness(CPU, snapshot)
    assert not cpu.would_wait and cpu.message == "Free now, room for 3 more servers like this."


def test_free_gpus_and_room_are_counted_per_slot():
    assert busyness(ONE_GPU, PoolSnapshot([pslot()])).message == "2 of 2 GPUs free, room for 2 more servers like this."
    half = PoolSnapshot([pslot(gpus_free=1, cpus=7), dslot()])
    assert busyness(TWO_GPUS, half).message == (
        "Only 1 GPU of 2 free now (this profile needs 2): 0 servers waiting; your server will queue."
    )
    # Free GPUs but no CPUs left to go with them on that node.
    assert busyness(ONE_GPU, PoolSnapshot([pslot(gpus_free=2, cpus=0)])).would_wait
    # Memory decides too: 16 G free fit four 4 G servers.
    assert slots_fitting(CPU, pslot(cpus=32)) == 4


def test_free_room_with_servers_already_waiting_for_it_says_it_will_probably_queue():
    busy = busyness(ONE_GPU, PoolSnapshot([pslot(gpus_free=1, cpus=7), dslot()], [waiting_server(9)]))
    assert busy.would_wait and busy.fits_now == 1
    assert busy.message == "1 GPU of 2 free now, but 1 server waiting ahead of you; your server will probably queue."


def test_closed_machines_static_slots_and_impossible_requests():
    # A draining machine, or one its owner uses, takes no new job: its free GPUs do not count.
    assert gpu_counts([pslot(State="Drained"), pslot(State="Owner")]) == (0, 0)
    assert busyness(ONE_GPU, PoolSnapshot([pslot(State="Drained")])).would_wait
    static = {"SlotType": "Static", "State": "Unclaimed", "Cpus": 4, "Memory": 8192, "GPUs": 1}
    assert slots_fitting(ONE_GPU, static) == 1 and slots_fitting(ONE_GPU, {**static, "State": "Claimed"}) == 0
    assert gpu_counts([static, {**static, "State": "Claimed"}]) == (1, 2)
    # A GPU below the profile's minimum capability does not fit it.
    assert slots_fitting(Request(gpus=1, gpu_min_capability=8.0), pslot(GPUs_Capability=7.5)) == 0
    assert "cannot start" in busyness(Request(gpus=4), PoolSnapshot([pslot()])).message
    assert "No execute node has reported" in busyness(ONE_GPU, PoolSnapshot([])).message


# -- the form ------------------------------------------------------------------------------------------

GPU_PROFILE = as_profile({"kind": "condor", "slug": "gpu-1", "display_name": "1 GPU", "roles": ["student"],
                          "cpus": 4, "memory": "16G", "gpus": 1, "runtime": "8h"})
LOGIN = as_profile({"kind": "login_node", "slug": "login", "display_name": "Login node", "roles": ["student"]})


def test_the_form_says_what_a_profile_gives_its_runtime_limit_and_that_it_would_wait():
    html = render_form([LOGIN, GPU_PROFILE], {"gpu-1": ProfileLoad("No free GPU now: 2 servers waiting; your "
                                                                   "server will queue.", would_wait=True)})
    assert "(4 CPU, 16G memory, 1 GPU, runs at most 8 h)" in html
    assert "2 GPUs, runs" in profile_summary(GPU_PROFILE.model_copy(update={"gpus": 2}))
    assert 'class="condorhub-busy condorhub-would-wait text-warning-emphasis" data-profile="gpu-1">No free GPU now' in html
    # The login node has no pool status and no runtime limit.
    assert "(1 CPU, 2G memory)" in html and html.count("condorhub-busy") == 1
    assert POOL_UNKNOWN in render_form([GPU_PROFILE], {"gpu-1": None})


def test_durations_read_as_people_write_them():
    assert [format_duration(s) for s in (28800, 5400, 129600, 90, 45 * 60)] == ["8 h", "1 h 30 min", "1 d 12 h",
                                                                              "1 min 30 s", "45 min"]
    assert profile_summary(GPU_PROFILE).endswith("runs at most 8 h")


# -- one cached query for a class ----------------------------------------------------------------------


class FakePool:
    """Stands in for CondorClient's two status calls; counts them, can hang."""

    def __init__(self):
        self.slot_queries = self.job_queries = 0
        self.answer = threading.Event()
        self.answer.set()
        self.constraints: list[str] = []

    def query_slots(self, projection=()):
        self.slot_queries += 1
        self.answer.wait(5)
        return [pslot(gpus_free=0, cpus=6), dslot(), dslot()]

    def query_jobs(self, constraint, projection=()):
        self.job_queries += 1
        self.constraints.append(constraint)
        return [{"ClusterId": 5, "ProcId": 0, "JobStatus": IDLE, "RequestGpus": 1, "CondorhubHub": HUB},
                {"ClusterId": 6, "ProcId": 0, "JobStatus": RUNNING, "RequestGpus": 1, "CondorhubHub": HUB}]


async def test_a_class_opening_the_form_at_once_makes_one_pair_of_queries():
    pool = FakePool()
    queue = HTCondorQueue(client=pool, hub_id=HUB)
    try:
        status = PoolStatus(queue=queue, max_age=30, timeout=2)
        snapshots = await asyncio.gather(*(status.snapshot() for _ in range(100)))
        assert (pool.slot_queries, pool.job_queries) == (1, 1)
        assert all(s is snapshots[0] for s in snapshots) and len(snapshots[0].waiting) == 2
        # Only this hub's idle servers are asked for.
        assert pool.constraints == [f'JobStatus == 1 && CondorhubHub == "{HUB}"']
        assert busyness(ONE_GPU, snapshots[0]).waiting == 1  # the running one is not waiting
        await status.snapshot()
        assert pool.slot_queries == 1  # still fresh
    finally:
        pool.answer.set()
        await queue.close()


async def test_a_pool_that_does_not_answer_leaves_the_form_working_and_is_not_asked_again_at_once():
    pool = FakePool()
    pool.answer.clear()  # the collector hangs
    queue = HTCondorQueue(client=pool, hub_id=HUB)
    try:
        status = PoolStatus(queue=queue, max_age=30, timeout=0.3)
        started = time.monotonic()
        assert await status.snapshot() is None
        assert time.monotonic() - started < 1.5
        assert "no answer within 0.3 s" in status.last_error
        assert await status.snapshot() is None and pool.slot_queries == 1  # the unknown answer is cached
    finally:
        pool.answer.set()
        await queue.close()
