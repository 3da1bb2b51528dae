"""One shared, cached view of the HTCondor queue for all of the hub's servers.

Stock CondorSpawner runs ``sudo -u <user> condor_q <job>`` once per server per poll: with 200 users that
is 200 processes and 200 schedd queries every poll interval, enough to overload a login node
(batchspawner #292) and, with the schedd slow to answer, to make spawners believe running jobs were gone
and submit again (#178). Here every server reads this view instead, and the view asks the schedd **once
per cycle for all of them**: one query whose constraint selects this hub's jobs (job attribute
``CondorhubHub``), plus the idle jobs queued ahead of them when some of ours wait. A collector query
(slot ads, to tell *why* a job waits) is added only while some job of ours is idle.

The bindings block (and can even hold the GIL while a schedd does not answer), so every call runs in a
worker process (:class:`.client.WorkerLane`); the event loop never waits on the pool. Refreshes are
coalesced: however many spawners ask for fresh data at once, one query runs, and everyone
waiting gets its result. A failed or timed-out query makes the view *unknown*, never empty: servers are
kept for ``unknown_grace`` seconds (#315: a server dropped while its job still ran left an orphan).

The view also reconciles: jobs of this hub that no server owns (not claimed by a live spawner, not in the
hub database) are removed, at hub start and every ``reconcile_interval``; removals that failed because
the schedd did not answer are retried every cycle until they succeed.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from traitlets import Float, Unicode, default
from traitlets.config import SingletonConfigurable

from condorhub.metrics import COLLECTOR_QUERIES, QUEUE_REFRESH_SECONDS, SCHEDD_QUERIES, record_schedd_query
from condorhub.schema import HTCondorSettings, default_of

from .client import CondorClientError, WorkerLane
from .jobs import IDLE, Job, Phase, Request, queue_position, wait_reason


class QueueUnavailable(Exception):
    """The schedd did not answer (the view is unknown); the message says since when and why."""


class HTCondorQueue(SingletonConfigurable):
    """The hub's shared view of its HTCondor jobs (one per hub process)."""

    condor_config = Unicode(
        "",
        config=True,
        help="""
        HTCondor configuration file for the hub's client (what CONDOR_CONFIG would name). Empty: the
        environment's CONDOR_CONFIG or HTCondor's default search. Set from the site file's
        `htcondor.condor_config`.
        """,
    )

    collector = Unicode(
        "",
        config=True,
        help="""
        Collector (central manager) as `host` or `host:port`. Empty: COLLECTOR_HOST of the HTCondor
        configuration.
        """,
    )

    schedd = Unicode(
        "",
        config=True,
        help="""
        Name of the schedd that queues the servers. Empty: the one the collector lists first (a pool with
        one access point).
        """,
    )

    token_file = Unicode(
        "",
        config=True,
        help="""
        IDTOKEN file the hub authenticates with. HTCondor reads tokens from a directory, so it is copied
        into `private_dir`/tokens.d (mode 0700). Its identity must be a queue super user allowed to
        impersonate real users (QUEUE_SUPER_USERS, QUEUE_SUPER_USER_MAY_IMPERSONATE).
        """,
    )

    private_dir = Unicode(
        "/var/lib/condorhub/htcondor",
        config=True,
        help="Directory (root only, 0700) for the hub's private copy of `token_file`.",
    )

    hub_id = Unicode(
        config=True,
        help="""
        Value of the CondorhubHub attribute of this hub's jobs. The view queries only jobs with this
        value and reconciliation removes only those, so several hubs can share a pool. Must stay the same
        across hub restarts.
        """,
    )

    @default("hub_id")
    def _hub_id_default(self):
        return f"{socket.getfqdn()}:condorhub"

    # Defaults the site file's `htcondor` section also has come from its schema, so they cannot differ.
    poll_interval = Float(
        default_of(HTCondorSettings, "poll_interval"),
        config=True,
        help="""
        Seconds between refreshes while the hub has jobs in the queue. Each refresh is one schedd query
        for all servers together, however many there are.
        """,
    )

    min_query_interval = Float(
        0.5,
        config=True,
        help="""
        Least time in seconds between two schedd queries. Spawns in progress ask for fresh data (a job
        just reported its port, a progress page is open); their requests are merged into one query per
        this interval at most, so many simultaneous spawns cannot flood the schedd.
        """,
    )

    query_timeout = Float(
        default_of(HTCondorSettings, "query_timeout"),
        config=True,
        help="""
        Seconds a schedd or collector query may take. A slower one counts as failed: the view becomes
        unknown (servers are kept, see `unknown_grace`) and the next cycle tries again. At most one query
        is ever in flight, so a hung schedd does not pile up requests.
        """,
    )

    unknown_grace = Float(
        default_of(HTCondorSettings, "unknown_grace"),
        config=True,
        help="""
        Seconds the queue may stay unknown (queries failing or timing out) before servers whose jobs
        cannot be seen are given up. Their jobs are then removed as soon as the schedd answers again, so
        giving up never leaves an orphaned job.
        """,
    )

    reconcile_interval = Float(
        300.0,
        config=True,
        help="""
        Seconds between sweeps for orphaned jobs: jobs of this hub (CondorhubHub) that no server owns.
        The first sweep runs at hub start.
        """,
    )

    orphan_min_age = Float(
        120.0,
        config=True,
        help="""
        A job younger than this (seconds since submission) is never treated as an orphan: it may belong
        to a spawn whose submission is just returning.
        """,
    )

    def __init__(self, client: Any = None, **kwargs):
        super().__init__(**kwargs)
        # Two lanes: queries (at most one in flight) and actions (submit, remove), so that a user's stop is
        # not stuck behind a slow query. Each is a worker process owning the bindings; a `client` given
        # here (tests) is called in threads instead.
        self._client = client
        self._threads = (
            {
                lane: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"condorhub-{lane}")
                for lane in ("query", "action")
            }
            if client is not None
            else {}
        )
        self._lanes: dict[str, WorkerLane] = {}
        self._background: set[asyncio.Task] = set()  # removals of late submissions (see _late_reply)
        self._query_in_flight: asyncio.Future | None = None
        self._query_started_at = 0.0

        self.jobs: dict[str, Job] = {}  # this hub's jobs, by id, as of the last successful refresh
        self.idle: list[Job] = []  # every idle job in the schedd that may be ahead of ours
        self.slots: list[dict] = []  # slot ads, refreshed while some job of ours is idle
        self.last_success: float | None = None  # monotonic time of the last successful refresh
        self.last_error: str = ""
        self._unknown_since: float | None = None
        self.generation = 0  # number of finished refreshes (successful or not)
        self._changed = asyncio.Event()

        self.claims: dict[str, str] = {}  # job id -> the server that owns it ("alice/")
        self._schedd_name = ""
        self.pending_removals: dict[str, str] = {}  # job id -> reason, retried until the schedd answers
        self.known_job_ids: Callable[[], set[str] | None] | None = None  # job ids in the hub database
        self._last_reconcile: float | None = None

        self.stats = {"schedd_queries": 0, "collector_queries": 0, "failed_queries": 0, "refreshes": 0}
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._last_query_at = 0.0

    # -- setup ----------------------------------------------------------------------------------------

    def _lane(self, name: str) -> WorkerLane:
        if name not in self._lanes:
            settings = {
                "condor_config": self.condor_config or None,
                "collector": self.collector or None,
                "schedd": self.schedd or None,
                "token_file": self.token_file or None,
                "private_dir": self.private_dir,
            }
            self._lanes[name] = WorkerLane(name, settings, log=self.log, on_late_reply=self._late_reply)
        return self._lanes[name]

    def _late_reply(self, method: str, args: list, reply: dict) -> None:
        """The answer to a call whose caller gave up (a spawn cancelled by JupyterHub's start timeout or
        out of `query_timeout`, while the schedd was slow). A job submitted that way belongs to a spawn
        that already failed: nobody will claim it, so it is removed now rather than left queued as the
        user until the orphan sweep (and the answer is never handed to another caller)."""
        if method != "submit" or "result" not in reply:
            return
        job_id = str(reply["result"])
        self.log.warning(
            "HTCondor job %s was submitted after its spawn had given up waiting for the schedd; removing it", job_id
        )
        task = asyncio.ensure_future(
            self.remove([job_id], "condorhub: its spawn gave up before the schedd confirmed the submission")
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start_call(self, lane: str, method: str, *args, timeout: float) -> asyncio.Future:
        """Start ``client.<method>(*args)`` in ``lane``; a future of its result. It fails with TimeoutError
        after ``timeout`` seconds; the next call then runs in a fresh worker process, and the stuck one is
        killed if it still has not answered after another ``timeout``."""
        if self._client is not None:
            call = functools.partial(getattr(self._client, method), *args)
            return asyncio.get_running_loop().run_in_executor(self._threads[lane], call)
        return asyncio.ensure_future(self._lane(lane).call(method, *args, timeout=timeout))

    async def status_call(self, method: str, *args, timeout: float):
        """A client call for the spawn form's pool status (:mod:`.pool_status`), in a lane of its own: a slow
        collector or a class opening the form never delays the queries that running servers depend on."""
        if self._client is not None and "status" not in self._threads:
            self._threads["status"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="condorhub-status")
        return await asyncio.wait_for(self._start_call("status", method, *args, timeout=timeout), timeout + 1)

    async def _call(self, lane: str, method: str, *args):
        """A client call in ``lane`` with the query timeout (submissions, removals, history)."""
        future = self._start_call(lane, method, *args, timeout=self.query_timeout)
        return await asyncio.wait_for(future, self.query_timeout + 1)

    def start(self) -> None:
        """Run the refresh loop on the current event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
            if self._client is None:
                # Start the worker processes now (importing the bindings takes a moment), not at the
                # first spawn (nor at the first spawn form: `status`, see .pool_status).
                for lane in ("query", "action", "status"):
                    self._start_call(lane, "ping", timeout=60).add_done_callback(_ignore_result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for pool in self._threads.values():
            pool.shutdown(wait=False, cancel_futures=True)
        for task in list(self._background):
            task.cancel()
        for lane in self._lanes.values():
            lane.close()
        for lane in self._lanes.values():
            await lane.wait_closed()
        self._lanes.clear()

    # -- what spawners read ---------------------------------------------------------------------------

    @property
    def unknown(self) -> bool:
        """True while the last refresh failed (or none has succeeded yet)."""
        return self._unknown_since is not None or self.last_success is None

    def unknown_for(self) -> float:
        """Seconds the view has been unknown (0 when it is not)."""
        if not self.unknown:
            return 0.0
        since = self._unknown_since if self._unknown_since is not None else time.monotonic()
        return time.monotonic() - since

    @property
    def last_query_started(self) -> float:
        """Monotonic time the latest schedd query started (its data is at least this new)."""
        return self._last_query_at

    def job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def position(self, job_id: str) -> int:
        job = self.jobs.get(job_id)
        return queue_position(job, self.idle) if job is not None else 0

    def why_waiting(self, request: Request) -> str:
        return wait_reason(request, self.slots)

    async def fresh(self, max_age: float) -> None:
        """Return once the view is at most ``max_age`` seconds old, refreshing (coalesced) if needed.

        Raises :class:`QueueUnavailable` if the refresh fails.
        """
        self.start()
        if self.last_success is not None and not self.unknown and time.monotonic() - self.last_success <= max_age:
            return
        await self.next_refresh()
        if self.unknown:
            raise QueueUnavailable(self.last_error or "the schedd has not answered yet")

    async def next_refresh(self, timeout: float | None = None) -> bool:
        """Ask for a refresh soon and wait until one has finished; False if ``timeout`` passed first."""
        self.start()
        generation = self.generation
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.generation == generation:
            changed = self._changed
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            if wait == 0:
                return False
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except TimeoutError:
                return False
        return True

    async def wait_for_change(self, timeout: float) -> None:
        """Wait for the next refresh of the regular cycle (without asking for an early one)."""
        self.start()
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            pass

    async def last_words(self, job_id: str) -> str:
        """Why a job that left the queue ended, from the schedd's history (one query, only for a job
        that vanished between two refreshes: a removed running job is usually gone before it is seen)."""
        try:
            ads = await self._call("action", "job_history", job_id)
        except (TimeoutError, CondorClientError):
            ads = []
        if not ads:
            return "HTCondor's history has no record of why"
        return Job.from_ad(ads[0]).end_reason()

    async def schedd_name(self) -> str:
        """The Name of the schedd the hub submits to, for users' client configuration ("" if unknown)."""
        if self.schedd:
            return self.schedd
        if not self._schedd_name:
            try:
                self._schedd_name = await self._call("action", "located_schedd_name")
            except (TimeoutError, CondorClientError):
                return ""
        return self._schedd_name

    # -- claims ---------------------------------------------------------------------------------------

    def claim(self, job_id: str, owner: str) -> None:
        """A server owns this job: it is polled, and never swept as an orphan."""
        self.claims[job_id] = owner
        self._wake.set()

    def release(self, job_id: str) -> None:
        self.claims.pop(job_id, None)

    # -- actions --------------------------------------------------------------------------------------

    async def submit(self, description: dict[str, str]) -> str:
        """Submit one job (off the event loop); returns its id. Raises CondorClientError with the reason."""
        try:
            return await self._call("action", "submit", dict(description))
        except TimeoutError:
            # The schedd may still commit it: its late answer removes it (_late_reply), or, if the worker
            # was killed first, the orphan sweep does (no server claims it, the hub database lacks it).
            raise CondorClientError(
                f"the schedd did not confirm the submission within {self.query_timeout:g} s"
            ) from None

    async def remove(self, job_ids: Iterable[str], reason: str) -> bool:
        """Remove jobs. If the schedd cannot be reached the removal is queued and retried every cycle
        (so a server the hub gives up never leaves its job behind); returns whether it succeeded now."""
        ids = [j for j in job_ids if j]
        if not ids:
            return True
        try:
            await self._call("action", "remove", ids, reason)
        except (TimeoutError, CondorClientError) as err:
            self.log.warning("Removing HTCondor job(s) %s failed (%s); will retry", ", ".join(ids), err or "timeout")
            for job_id in ids:
                self.pending_removals[job_id] = reason
            self._wake.set()
            return False
        for job_id in ids:
            self.pending_removals.pop(job_id, None)
        self._wake.set()
        return True

    # -- the refresh loop -----------------------------------------------------------------------------

    def _busy(self) -> bool:
        """Whether a refresh is worth a query: jobs to watch, removals to retry, or a sweep due."""
        return bool(self.claims or self.pending_removals or self._reconcile_due())

    def _reconcile_due(self) -> bool:
        if self.known_job_ids is None:
            return False
        return self._last_reconcile is None or time.monotonic() - self._last_reconcile >= self.reconcile_interval

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass
            # Merge bursts of requests: at most one query per min_query_interval.
            pause = self._last_query_at + self.min_query_interval - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            asked = self._wake.is_set()  # someone awaits next_refresh()/fresh(), or a job was claimed
            self._wake.clear()
            if not asked and not self._busy() and self.generation > 0:
                continue  # nothing to watch: no query at all
            try:
                await self.refresh()
            except Exception:  # never let the loop die: the next cycle tries again
                self.log.exception("HTCondor queue refresh failed unexpectedly")

    def _constraint(self) -> str:
        mine = f"CondorhubHub == {_classad_string(self.hub_id)}"
        queued = [job for job in self.jobs.values() if job.status == IDLE]
        if not queued and not any(job_id not in self.jobs for job_id in self.claims):
            return mine
        # Some of ours wait (or were just submitted): also the idle jobs queued before the newest of
        # them, to say how many are ahead. Same query, no extra round trip.
        newest = max([job.qdate for job in queued] or [0])
        limit = f"QDate <= {newest}" if newest and all(j in self.jobs for j in self.claims) else "true"
        return f"({mine}) || (JobStatus == {IDLE} && {limit})"

    async def refresh(self) -> None:
        """One cycle: one schedd query (and a collector query while jobs of ours wait)."""
        started = time.monotonic()
        self._last_query_at = started
        try:
            in_flight = self._query_in_flight
            if in_flight is not None and not in_flight.done():
                # Never a second query while one hangs: an overloaded schedd gets no pile-up (#178). The
                # hung one is given 3 × query_timeout (the view is unknown meanwhile); then the next
                # refresh starts afresh in a new worker process (the hung one is killed 3 × later).
                raise CondorClientError("the previous schedd query has not returned yet")
            self._query_started_at = time.monotonic()
            self._query_in_flight = self._start_call(
                "query", "query_jobs", self._constraint(), timeout=3 * self.query_timeout
            )
            self._query_in_flight.add_done_callback(_ignore_result)
            self.stats["schedd_queries"] += 1
            SCHEDD_QUERIES.inc()
            ads = await asyncio.wait_for(asyncio.shield(self._query_in_flight), self.query_timeout)
            record_schedd_query(time.monotonic() - self._query_started_at)  # /hub/metrics: latency, answered
            jobs = [Job.from_ad(ad) for ad in ads]
            mine = {job.id: job for job in jobs if job.hub == self.hub_id}
            idle = [job for job in jobs if job.status == IDLE]
            slots = self.slots
            if any(job.status == IDLE for job in mine.values()):
                self.stats["collector_queries"] += 1
                COLLECTOR_QUERIES.inc()
                try:
                    slots = await asyncio.wait_for(
                        self._start_call("query", "query_slots", timeout=self.query_timeout), self.query_timeout + 1
                    )
                except (TimeoutError, CondorClientError) as err:
                    # Only the explanation of waiting suffers; the job states are fine.
                    self.log.warning("Collector query for free slots failed: %s", err or "timeout")
        except (TimeoutError, CondorClientError) as err:
            message = str(err) or f"no answer within {self.query_timeout:g} s"
            self.stats["failed_queries"] += 1
            record_schedd_query(None)  # /hub/metrics: a failed (or refused while one hangs) schedd query
            if self._unknown_since is None:
                self._unknown_since = time.monotonic()
                self.log.warning("HTCondor queue unknown: %s (servers are kept for %g s)", message, self.unknown_grace)
            self.last_error = message
        else:
            if self._unknown_since is not None:
                self.log.info("HTCondor queue answers again after %.0f s", time.monotonic() - self._unknown_since)
            self.jobs, self.idle, self.slots = mine, idle, slots
            self.last_success = time.monotonic()
            self._unknown_since = None
            self.last_error = ""
            self.stats["refreshes"] += 1
            await self._after_refresh()
        finally:
            self.generation += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            QUEUE_REFRESH_SECONDS.observe(time.monotonic() - started)

    async def _after_refresh(self) -> None:
        # Retry removals the schedd missed, for jobs it still lists.
        retry = {j: r for j, r in self.pending_removals.items() if j in self.jobs and self.jobs[j].phase != Phase.ended}
        for job_id in set(self.pending_removals) - set(retry):
            self.pending_removals.pop(job_id, None)  # gone meanwhile
        for reason in set(retry.values()):
            await self.remove([j for j, r in retry.items() if r == reason], reason)
        if self._reconcile_due():
            await self.reconcile()

    async def reconcile(self) -> list[str]:
        """Remove this hub's jobs that no server owns; returns their ids."""
        try:
            in_db = self.known_job_ids() if self.known_job_ids is not None else None
        except Exception:
            self.log.exception("Cannot read the servers' jobs from the hub database; skipping this sweep")
            in_db = None
        if in_db is None:
            return []  # not yet (the hub's database is not open): try again next cycle
        self._last_reconcile = time.monotonic()
        orphans = find_orphans(self.jobs.values(), set(self.claims) | in_db, time.time(), self.orphan_min_age)
        if orphans:
            self.log.warning(
                "Removing %d HTCondor job(s) of this hub that no server owns: %s", len(orphans), ", ".join(orphans)
            )
            await self.remove(orphans, "condorhub: no server of this hub owns this job any more")
        return orphans


def find_orphans(jobs: Iterable[Job], owned: set[str], now: float, min_age: float) -> list[str]:
    """Jobs not owned by any server, not already ending, and older than ``min_age`` seconds."""
    return sorted(
        (job.id for job in jobs if job.id not in owned and job.phase != Phase.ended and now - job.qdate >= min_age),
        key=lambda j: tuple(int(x) for x in j.split(".")),
    )


def _ignore_result(future: asyncio.Future) -> None:
    """Retrieve a background call's outcome (its failure is handled where it matters), so asyncio does
    not log "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


def _classad_string(value: str) -> str:
    """A ClassAd string literal (quotes and backslashes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
