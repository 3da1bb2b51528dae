"""How busy the pool is *now*, for the spawn form: free GPUs and slots that fit a profile, servers waiting.

The form is opened by a whole class at the start of a lesson, so the pool is asked at most once per
``PoolStatus.max_age`` seconds for all of them: one collector query (the startds' slot ads) and one
schedd query (this hub's idle server jobs, marked ``CondorhubHub``), in a worker process of their own
(the queue view's ``status`` lane), so a slow collector never delays the queries running servers depend
on. Everyone who opens the form meanwhile gets the cached answer; whoever comes while a query runs waits for that
same query. A pool that does not answer within ``PoolStatus.timeout`` leaves the form working: it says
"pool status unknown", and that answer is cached too (a hung collector is not asked 100 times).

What a slot ad means (HTCondor manual, "Partitionable slots" and the GPU attributes): a *partitionable*
slot advertises what is still unclaimed in ``Cpus``, ``Memory`` and ``GPUs`` (its totals in
``TotalSlotCpus``/``TotalSlotGPUs``; what its dynamic children took in ``ChildCpus``/``ChildGPUs``);
*dynamic* slots are carved out of it and are busy by definition; a *static* slot is free only while
``State`` is ``Unclaimed``. A machine whose ``State`` is ``Owner`` or ``Drained`` takes no new jobs.
The pure functions below turn those ads into what a person reads; :class:`PoolStatus` fetches them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from traitlets import Float
from traitlets.config import SingletonConfigurable

from .client import JOB_ATTRIBUTES, SLOT_ATTRIBUTES, CondorClientError
from .jobs import IDLE, Job, Request

#: Slot states in which a startd accepts no new job (the machine's owner uses it, or it is draining).
CLOSED_STATES = frozenset({"Owner", "Drained"})

#: What the form needs of a slot ad (the queue view's projection plus the children's totals).
STATUS_SLOT_ATTRIBUTES = (*SLOT_ATTRIBUTES, "TotalGPUs", "ChildGPUs")


@dataclass(frozen=True)
class PoolSnapshot:
    """The pool as one pair of queries saw it."""

    slots: list[dict] = field(default_factory=list)
    waiting: list[Job] = field(default_factory=list)  # this hub's idle server jobs
    taken_at: float = 0.0  # time.time()


@dataclass(frozen=True)
class Busyness:
    """How a profile's request fits the pool now, and the sentence the form shows."""

    fits_now: int  # servers like this one the pool could start right now
    free_gpus: int
    total_gpus: int
    waiting: int  # servers of this hub waiting for the same kind of slot (GPU / CPU only)
    would_wait: bool
    message: str


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _gpu_ok(slot: dict, request: Request) -> bool:
    """Whether the slot's GPUs meet the request's minimum capability and memory (when it has the attributes)."""
    if request.gpu_min_capability is not None and _number(slot.get("GPUs_Capability")) < request.gpu_min_capability:
        return False
    return not (
        request.gpu_min_memory_mb is not None and _number(slot.get("GPUs_GlobalMemoryMb")) < request.gpu_min_memory_mb
    )


def slots_fitting(request: Request, slot: dict) -> int:
    """How many jobs with ``request`` the free part of one slot ad could take now."""
    kind = slot.get("SlotType")
    if kind == "Dynamic" or slot.get("State") in CLOSED_STATES:
        return 0  # a dynamic slot is busy (its resources left the partitionable parent); closed takes nothing
    if kind != "Partitionable" and slot.get("State") != "Unclaimed":
        return 0  # a static slot is all or nothing
    cpus, memory, gpus = _number(slot.get("Cpus")), _number(slot.get("Memory")), _number(slot.get("GPUs"))
    counts = [int(cpus // max(request.cpus, 1))]
    if request.memory_mb:
        counts.append(int(memory // request.memory_mb))
    if request.gpus:
        if not _gpu_ok(slot, request):
            return 0
        counts.append(int(gpus // request.gpus))
    fits = max(min(counts), 0)
    return min(fits, 1) if kind != "Partitionable" else fits


def gpu_counts(slots: list[dict]) -> tuple[int, int]:
    """(free, total) GPUs of the pool's open machines."""
    free = total = 0
    for slot in slots:
        kind = slot.get("SlotType")
        if kind == "Dynamic" or slot.get("State") in CLOSED_STATES:
            continue
        gpus = int(_number(slot.get("GPUs")))
        if kind == "Partitionable":
            total += int(_number(slot.get("TotalSlotGPUs")) or gpus)
            free += gpus
        else:
            total += gpus
            free += gpus if slot.get("State") == "Unclaimed" else 0
    return free, total


def competing(request: Request, waiting: list[Job]) -> int:
    """Waiting servers that want the same kind of slot (GPU jobs for a GPU request, CPU-only otherwise),
    the rule :func:`.jobs.queue_position` uses for a job already in the queue."""
    wants_gpus = request.gpus > 0
    return sum(1 for job in waiting if job.status == IDLE and (job.request_gpus > 0) == wants_gpus)


def _servers(n: int) -> str:
    return f"{n} server waiting" if n == 1 else f"{n} servers waiting"


def _gpus(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def busyness(request: Request, snapshot: PoolSnapshot) -> Busyness:
    """What the spawn form says of a profile with ``request``, from one snapshot of the pool."""
    fits = sum(slots_fitting(request, slot) for slot in snapshot.slots)
    free, total = gpu_counts(snapshot.slots)
    waiting = competing(request, snapshot.waiting)
    queue_words = _servers(waiting)
    if not snapshot.slots:
        message = "No execute node has reported to the pool; your server will queue until one does."
        return Busyness(0, 0, 0, waiting, True, message)
    if request.gpus and total < request.gpus:
        message = f"The pool has {_gpus(total)} in all; this profile asks for {request.gpus} and cannot start."
        return Busyness(0, free, total, waiting, True, message)
    if fits == 0:
        if request.gpus and free == 0:
            what = "no free GPU now"
        elif request.gpus and free < request.gpus:
            what = f"only {_gpus(free)} of {total} free now (this profile needs {request.gpus})"
        elif request.gpus:
            what = f"{free} of {total} GPUs free, but no node has the CPUs and memory to go with them now"
        else:
            what = "no free slot with these CPUs and this memory now"
        return Busyness(0, free, total, waiting, True, _sentence(f"{what}: {queue_words}; your server will queue."))
    room = f"room for {fits} more server{'s' if fits != 1 else ''} like this"
    if waiting >= fits:
        # Free room, but the servers already waiting for it are ahead of a new one.
        free_now = f"{_gpus(free)} of {total} free now" if request.gpus else f"{room} now"
        message = f"{free_now}, but {queue_words} ahead of you; your server will probably queue."
        return Busyness(fits, free, total, waiting, True, _sentence(message))
    parts = [f"{free} of {total} GPUs free" if request.gpus else "free now", room]
    if waiting:
        parts.append(queue_words)
    return Busyness(fits, free, total, waiting, False, _sentence(", ".join(parts) + "."))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


class PoolStatus(SingletonConfigurable):
    """The spawn form's cached view of the pool's busy-ness (one per hub process)."""

    max_age = Float(
        10.0,
        config=True,
        help="""
        Seconds the spawn form's view of the pool (free GPUs and slots, servers waiting) is reused before
        the pool is asked again. However many people open the form within this time, the collector and
        the schedd are asked once.
        """,
    )

    timeout = Float(
        3.0,
        config=True,
        help="""
        Seconds the spawn form waits for the pool's answer. Slower, and the form says "pool status
        unknown" (and keeps that answer for `max_age`): a busy or hung pool never stops anyone from
        starting a server.
        """,
    )

    def __init__(self, queue=None, **kwargs):
        super().__init__(**kwargs)
        self._queue = queue
        self._snapshot: PoolSnapshot | None = None
        self._checked_at = -1e9  # monotonic time of the last answer (or failure)
        self._in_flight: asyncio.Future | None = None
        self.last_error = ""
        self.queries = 0  # pairs of queries made (tests, and a look from a hub shell)

    @property
    def queue(self):
        if self._queue is None:
            from .queue import HTCondorQueue

            self._queue = HTCondorQueue.instance(config=self.config)
        return self._queue

    async def snapshot(self) -> PoolSnapshot | None:
        """The pool now (at most ``max_age`` old), or None when it did not answer in time."""
        if time.monotonic() - self._checked_at < self.max_age:
            return self._snapshot
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.ensure_future(self._query())
        try:
            await asyncio.wait_for(asyncio.shield(self._in_flight), self.timeout)
        except TimeoutError:
            # The query goes on (and lands in the cache when it answers); this form says "unknown".
            if self._checked_at < 0 or time.monotonic() - self._checked_at >= self.max_age:
                self._remember(None, f"no answer within {self.timeout:g} s")
        return self._snapshot

    def cached(self) -> tuple[PoolSnapshot | None, float | None]:
        """The latest answer without waiting, and its age in seconds (None, None: never asked yet; a snapshot
        of None: the pool did not answer). For /hub/metrics (condorhub.metrics), whose scrape cannot wait."""
        if self._checked_at < 0:
            return None, None
        return self._snapshot, time.monotonic() - self._checked_at

    def _remember(self, snapshot: PoolSnapshot | None, error: str = "") -> None:
        self._snapshot, self.last_error = snapshot, error
        self._checked_at = time.monotonic()

    async def _query(self) -> None:
        queue = self.queue
        self.queries += 1
        idle = f"JobStatus == {IDLE} && CondorhubHub == {_classad_string(queue.hub_id)}"
        # The calls get a longer limit than the form waits: a late answer still fills the cache.
        limit = 3 * self.timeout
        try:
            slots, ads = await asyncio.gather(
                queue.status_call("query_slots", list(STATUS_SLOT_ATTRIBUTES), timeout=limit),
                queue.status_call("query_jobs", idle, list(JOB_ATTRIBUTES), timeout=limit),
            )
            snapshot = PoolSnapshot(list(slots), [Job.from_ad(ad) for ad in ads], time.time())
        except (TimeoutError, CondorClientError) as err:
            queue.log.warning("Pool status for the spawn form failed: %s", err or "timeout")
            self._remember(None, str(err) or "timeout")
        except Exception as err:  # an answer we cannot read: "unknown" for max_age too, never a broken form
            queue.log.exception("Pool status for the spawn form failed")
            self._remember(None, f"{type(err).__name__}: {err}")
        else:
            self._remember(snapshot)


def _classad_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
