"""The hub's HTCondor client: the few calls condorhub makes, through the ``htcondor2`` bindings.

Every method here blocks (the bindings talk to the daemons synchronously). Worse, the bindings keep
Python's GIL in some network paths: a query to a schedd that stopped answering (a "resume session"
handshake waiting for its timeout) froze every thread of the process, the hub's event loop included, for
20 s in our tests. A thread executor is therefore not enough: :class:`WorkerLane` runs the client in a
separate **worker process** (:mod:`.worker`, which imports neither JupyterHub nor anything of the hub) and
the hub only awaits a pipe. A hung call costs a worker process, never the hub: it is killed and replaced.
Requests carry ids and answers are matched by them, so the answer to a call whose caller gave up never
reaches another caller (see :class:`WorkerLane`).

It knows nothing of JupyterHub: plain dicts in, plain dicts out, which also keeps the queue logic
testable with a fake client.

Authentication: the bindings read the HTCondor configuration once per process. A site points the hub at
it with ``condor_config`` (what CONDOR_CONFIG would name) and may hand it an IDTOKEN file; HTCondor reads
tokens from a *directory*, so the file is copied into a private one (mode 0700) that the configuration
then names.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Job attributes the queue view needs, and nothing more (a projection keeps the one query cheap).
JOB_ATTRIBUTES = (
    "ClusterId",
    "ProcId",
    "JobStatus",
    "Owner",
    "QDate",
    "EnteredCurrentStatus",
    "JobCurrentStartDate",
    "NumJobStarts",
    "RemoteHost",
    "StartdIpAddr",
    "HoldReason",
    "HoldReasonCode",
    "RemoveReason",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "RequestGpus",
    "RequestCpus",
    "RequestMemory",
    "AssignedGPUs",
    "CondorhubHub",
    "CondorhubUser",
    "CondorhubServer",
)

#: Slot attributes used to explain why an idle job does not start (free GPUs vs requested, ...).
SLOT_ATTRIBUTES = (
    "Name",
    "Machine",
    "SlotType",
    "State",
    "Cpus",
    "Memory",
    "GPUs",
    "TotalSlotGPUs",
    "TotalSlotCpus",
    "TotalSlotMemory",
    "GPUs_Capability",
    "GPUs_GlobalMemoryMb",
)


class CondorClientError(RuntimeError):
    """A call to the pool failed; the message names the daemon and what to check."""


class WorkerDiedError(CondorClientError):
    """The worker process ended (killed, crashed) while it ran the call: whether the call took effect in
    the pool is unknown (see :meth:`WorkerLane.submit` for how a submission finds out)."""


#: The job attribute that names one submission (:meth:`WorkerLane.submit`): a random id, nothing secret.
SUBMIT_ID_ATTRIBUTE = "CondorhubSubmitId"


_config_lock = threading.Lock()
_configured: tuple | None = None


def configure_htcondor(
    condor_config: str | None = None,
    collector: str | None = None,
    token_file: str | None = None,
    private_dir: str | None = None,
) -> None:
    """Point this process's htcondor2 bindings at the pool (idempotent; the configuration is global).

    Raises :class:`CondorClientError` when a named file is missing or unreadable, so a typo in the site
    file stops the first spawn with a message instead of failing later as "permission denied".
    """
    global _configured
    key = (condor_config, collector, token_file, private_dir)
    with _config_lock:
        if _configured == key:
            return
        if condor_config:
            if not os.access(condor_config, os.R_OK):
                raise CondorClientError(
                    f"HTCondor configuration {condor_config} cannot be read; fix `htcondor.condor_config` "
                    "in the site file"
                )
            os.environ["CONDOR_CONFIG"] = condor_config
        if collector:
            os.environ["_CONDOR_COLLECTOR_HOST"] = collector
        if token_file:
            token_dir = Path(private_dir or "/var/lib/condorhub/htcondor") / "tokens.d"
            try:
                token_dir.mkdir(parents=True, exist_ok=True)
                os.chmod(token_dir.parent, 0o700)
                os.chmod(token_dir, 0o700)
                target = token_dir / "hub.token"
                shutil.copyfile(token_file, target)
                os.chmod(target, 0o600)
            except OSError as err:
                raise CondorClientError(
                    f"cannot use the IDTOKEN {token_file} ({err.strerror}); check `htcondor.token_file`"
                ) from None
            os.environ["_CONDOR_SEC_TOKEN_DIRECTORY"] = str(token_dir)
            os.environ["_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS"] = "IDTOKENS"
        import htcondor2

        htcondor2.reload_config()
        _configured = key


def locate_schedd(name: str | None = None, collector: str | None = None, attempts: int = 3, pause: float = 1.0):
    """The schedd's location ad: by ``name`` (else the configuration's SCHEDD_HOST, else the local one).

    Blocking (a collector query; call it off the event loop). Retried briefly: right after a schedd
    reconfigures (the hub does so when a user's lines in the pool's user map change) its ad can be missing
    from the collector for a moment, which is no reason to fail a spawn or a user's submit.
    """
    import htcondor2

    name = name or htcondor2.param.get("SCHEDD_HOST") or None
    for attempt in range(1, attempts + 1):
        try:
            pool = htcondor2.Collector(collector) if collector else htcondor2.Collector()
            return pool.locate(htcondor2.DaemonType.Schedd, name)
        except Exception:
            if attempt == attempts:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


def _plain(ad: Mapping) -> dict[str, Any]:
    """A ClassAd as a dict of plain Python values (expressions that cannot be evaluated become None)."""
    out: dict[str, Any] = {}
    for key in ad.keys():  # noqa: SIM118 - a ClassAd is not a dict; keys() is its documented listing
        try:
            value = ad.eval(key) if hasattr(ad, "eval") else ad[key]
        except Exception:
            value = None
        if value is not None and not isinstance(value, (str, int, float, bool)):
            # classad2 Value.Undefined / Error and lists: keep a readable form.
            value = None if str(value) in ("Undefined", "Error") else str(value)
        out[key] = value
    return out


class CondorClient:
    """Blocking calls to one schedd (and its collector). Thread-safe for the two executors that use it."""

    def __init__(self, *, collector: str | None = None, schedd: str | None = None):
        self.collector_address = collector
        self.schedd_name = schedd
        self._schedd = None
        self._schedd_ad: dict | None = None
        self._lock = threading.Lock()

    # -- daemons ----------------------------------------------------------------------------------

    def _collector(self):
        import htcondor2

        return htcondor2.Collector(self.collector_address) if self.collector_address else htcondor2.Collector()

    def _get_schedd(self):
        import htcondor2

        with self._lock:
            if self._schedd is None:
                try:
                    location = locate_schedd(self.schedd_name, self.collector_address)
                except Exception as err:
                    which = f"schedd {self.schedd_name!r}" if self.schedd_name else "a schedd"
                    raise CondorClientError(
                        f"the collector ({self.collector_address or 'COLLECTOR_HOST'}) does not know {which}: "
                        f"{err}. Is the pool up, and `htcondor.schedd` right?"
                    ) from None
                self._schedd = htcondor2.Schedd(location)
                self._schedd_ad = _plain(location)
            return self._schedd

    def located_schedd_name(self) -> str:
        """The Name of the schedd this client submits to (users' tools locate it by that name)."""
        return str(self._get_schedd_ad().get("Name") or "")

    def _get_schedd_ad(self) -> dict:
        self._get_schedd()
        return dict(self._schedd_ad or {})

    def _forget_schedd(self) -> None:
        # After a failure the schedd may have restarted on another port: locate it again next time.
        with self._lock:
            self._schedd = None

    # -- queries ----------------------------------------------------------------------------------

    def query_jobs(self, constraint: str, projection: Iterable[str] = JOB_ATTRIBUTES) -> list[dict]:
        """Job ads matching ``constraint`` (one schedd query)."""
        schedd = self._get_schedd()
        try:
            ads = schedd.query(constraint, projection=list(projection))
        except Exception as err:
            self._forget_schedd()
            raise CondorClientError(f"schedd query failed: {err}") from None
        return [_plain(ad) for ad in ads]

    def job_history(self, job_id: str, projection: Iterable[str] = JOB_ATTRIBUTES) -> list[dict]:
        """The job's ad from the schedd's history (once it left the queue)."""
        cluster, _, proc = job_id.partition(".")
        schedd = self._get_schedd()
        try:
            ads = schedd.history(
                f"ClusterId == {int(cluster)} && ProcId == {int(proc or 0)}", projection=list(projection), match=1
            )
        except Exception as err:
            self._forget_schedd()
            raise CondorClientError(f"schedd history query failed: {err}") from None
        return [_plain(ad) for ad in ads]

    def query_slots(self, projection: Iterable[str] = SLOT_ATTRIBUTES) -> list[dict]:
        """Startd (slot) ads from the collector: what the pool has free."""
        import htcondor2

        try:
            ads = self._collector().query(htcondor2.AdTypes.Startd, projection=list(projection))
        except Exception as err:
            raise CondorClientError(f"collector query failed: {err}") from None
        return [_plain(ad) for ad in ads]

    # -- actions ----------------------------------------------------------------------------------

    def submit(self, description: Mapping[str, str]) -> str:
        """Submit one job; returns its id ``"cluster.proc"``."""
        import htcondor2

        schedd = self._get_schedd()
        try:
            result = schedd.submit(htcondor2.Submit(dict(description)), count=1)
        except Exception as err:
            self._forget_schedd()
            raise CondorClientError(f"the schedd refused the job: {err}") from None
        return f"{result.cluster()}.0"

    def remove(self, job_ids: Iterable[str], reason: str) -> dict:
        """Remove jobs (running ones are killed on their node first). Returns the schedd's counts."""
        import htcondor2

        ids = [str(j) for j in job_ids]
        if not ids:
            return {}
        schedd = self._get_schedd()
        try:
            # The bindings only pass the reason on when it comes as a (text, code) tuple.
            result = schedd.act(htcondor2.JobAction.Remove, ids, reason=(reason, None))
        except Exception as err:
            self._forget_schedd()
            raise CondorClientError(f"removing job(s) {', '.join(ids)} failed: {err}") from None
        return _plain(result) if result is not None else {}


# -- the worker process ------------------------------------------------------------------------------

#: States of a request (:class:`_Request`): its caller awaits the answer; its caller gave up (cancelled,
#: or out of time) and the answer, when it comes, is handled here and never handed to anyone.
WAITING, ABANDONED = "waiting", "abandoned"


class _Request:
    """One call sent to a worker process. Its id is echoed in the answer, which is matched by it."""

    __slots__ = ("id", "method", "args", "future", "sent_at", "deadline", "state")

    def __init__(
        self, request_id: int, method: str, args: list, future: asyncio.Future, sent_at: float, timeout: float
    ):
        self.id = request_id
        self.method = method
        self.args = args
        self.future = future
        self.sent_at = sent_at  # loop time
        self.deadline = sent_at + timeout  # by which the caller wanted its answer
        self.state = WAITING

    def line(self) -> bytes:
        return (json.dumps({"id": self.id, "method": self.method, "args": self.args}) + "\n").encode()


class _Worker:
    """One worker process: its pipes, the one request it executes (it runs them one at a time), the task
    that reads its answers, and the timer that kills it when an abandoned request hangs too long."""

    def __init__(self, proc):
        self.proc = proc
        self.busy: _Request | None = None
        self.reader: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and self.reader is not None and not self.reader.done()


class WorkerLane:
    """Worker processes (:mod:`.worker`) that run :class:`CondorClient` calls, one at a time.

    Async all the way: the hub writes a JSON line to the worker's stdin and awaits its answer on stdout,
    so no thread of the hub ever sits inside the bindings.

    Every request carries an id that the worker echoes; a reader task matches each answer to the one
    request the process executes, and only a caller still waiting gets it. A caller that gives up
    (cancelled by JupyterHub's start timeout, a hub shutdown or a ``wait_for`` around the call, or out of
    its own ``timeout``) leaves its request *abandoned*: the answer, if it comes, is dropped (logged at
    debug) and passed to ``on_late_reply`` (the queue view removes a job whose submission nobody waits
    for). Without the ids, that answer stayed in the pipe and the next caller read it as its own: another
    user's job id.

    The next call never waits behind an abandoned request (the schedd it waits for may hang, and the
    bindings cannot be interrupted): the busy process is *retired* (its stdin closed, so it exits once
    the call returns, its answer still handled) and a fresh one serves the call. A process still busy
    ``late_grace`` seconds after the abandoned request's deadline is killed.
    """

    # A query of a big queue is one long JSON line.
    LINE_LIMIT = 256 * 1024 * 1024

    #: At most this many retired processes finish abandoned calls at once; beyond, the oldest is killed
    #: (its answer is then lost: a job it may have submitted is left to the queue view's orphan sweep).
    MAX_RETIRED = 4

    def __init__(self, name: str, settings: dict, log=None, on_late_reply=None, late_grace: float | None = None):
        self.name = name
        self.settings = dict(settings)
        self.log = log or logging.getLogger(__name__)
        #: ``on_late_reply(method, args, reply)``: called with the answer to an abandoned request.
        self.on_late_reply = on_late_reply
        #: Seconds an abandoned request may run past its deadline before its process is killed; None:
        #: its own timeout again (so a call gets at most twice its timeout in all).
        self.late_grace = late_grace
        self._worker: _Worker | None = None
        self._retired: list[_Worker] = []
        self._readers: set[asyncio.Task] = set()
        self._lock: asyncio.Lock | None = None
        self._ids = itertools.count(1)

    # -- processes --------------------------------------------------------------------------------------

    async def _spawn(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "condorhub.spawner.condor.worker",
            json.dumps(self.settings),
            # The lane's name, which the worker ignores: `ps` then tells which process runs what.
            f"--lane={self.name}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=self.LINE_LIMIT,
            # Its own process group: a kill() here never reaches the hub.
            start_new_session=True,
        )
        worker = _Worker(proc)
        worker.reader = asyncio.ensure_future(self._read(worker))
        self._readers.add(worker.reader)
        worker.reader.add_done_callback(self._readers.discard)
        return worker

    async def _ready(self) -> _Worker:
        """The process for the next call (the caller holds the lock)."""
        worker = self._worker
        if worker is not None and worker.busy is not None:
            # Busy although no caller holds the lock: an abandoned request still runs. Do not wait for it.
            self._retire(worker)
            worker = None
        if worker is None or not worker.alive:
            if worker is not None:
                self._kill(worker)
            worker = self._worker = await self._spawn()
        return worker

    def _retire(self, worker: _Worker) -> None:
        request = worker.busy
        self.log.debug(
            "HTCondor client %s: process %d still runs abandoned request %d (%s); a fresh process takes the next call",
            self.name,
            worker.proc.pid,
            request.id if request else 0,
            request.method if request else "-",
        )
        if worker is self._worker:
            self._worker = None
        self._retired.append(worker)
        try:
            worker.proc.stdin.close()  # the worker exits when the call returns and it reads end-of-file
        except Exception:
            pass
        while len(self._retired) > self.MAX_RETIRED:
            oldest = self._retired[0]
            self.log.warning(
                "HTCondor client %s: more than %d processes hang on abandoned calls; killing process %d",
                self.name,
                self.MAX_RETIRED,
                oldest.proc.pid,
            )
            self._kill(oldest)

    def _forget(self, worker: _Worker) -> None:
        if worker is self._worker:
            self._worker = None
        if worker in self._retired:
            self._retired.remove(worker)
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None

    def _kill(self, worker: _Worker) -> None:
        self._forget(worker)
        if worker.proc.returncode is None:
            try:
                worker.proc.kill()
            except ProcessLookupError:
                pass
        # Its reader sees end-of-file and settles the request it executed.

    # -- calls ------------------------------------------------------------------------------------------

    async def call(self, method: str, *args, timeout: float):
        """``CondorClient.<method>(*args)`` in a worker; raises CondorClientError or TimeoutError."""
        if method == "submit":
            return await self.submit(*args, timeout=timeout)
        return await self._call(method, *args, timeout=timeout)

    async def submit(self, description: Mapping[str, str], *, timeout: float) -> str:
        """Submit one job; its id. Safe against the worker dying in the middle (killed, OOM, a crash in
        the bindings): the spawn then either gets the job the schedd did commit, or fails with no job.

        The schedd commits a submission in one transaction at its end; a worker killed before that leaves
        nothing (the schedd drops the transaction with the connection), one killed after it leaves a job
        whose id never reached the hub. Without a way to tell the two apart the spawn failed either way,
        and the committed job, owned by no server, ran as the user until the orphan sweep (up to
        ``reconcile_interval`` later), holding its GPU; the user's next try queued a second one. So every
        submission carries a random id (``CondorhubSubmitId``), and after a death a fresh worker asks the
        schedd for it.
        """
        submit_id = uuid.uuid4().hex
        marked = {**dict(description), f"+{SUBMIT_ID_ATTRIBUTE}": f'"{submit_id}"'}
        try:
            return await self._call("submit", marked, timeout=timeout)
        except WorkerDiedError as err:
            died = err
        # The dead process's connection to the schedd is closed (its reader saw the end of its pipes), so
        # the schedd has either committed the job or dropped it by now.
        self.log.warning(
            "HTCondor client %s: the process died during a submission (%s); asking the schedd whether it took the job",
            self.name,
            died,
        )
        # Every pool user can read the job's ad, submit id included, and submit a job that copies it: only a
        # job of the same owner (the schedd sets Owner; a user cannot submit as another) and hub is ours.
        constraint = " && ".join(
            [f'{SUBMIT_ID_ATTRIBUTE} == "{submit_id}"']
            + [f"{attr} == {marked[f'+{attr}']}" for attr in ("Owner", "CondorhubHub") if f"+{attr}" in marked]
        )
        try:
            ads = await self._call("query_jobs", constraint, ["ClusterId", "ProcId"], timeout=timeout)
        except (CondorClientError, TimeoutError) as err:
            raise CondorClientError(
                f"the HTCondor client process ({self.name}) died during the submission, and the schedd could not "
                f"be asked whether it took the job ({err or 'no answer'}); if it did, the orphan sweep removes it. "
                "Start the server again"
            ) from None
        if len(ads) > 1:
            raise CondorClientError(
                f"the HTCondor client process ({self.name}) died during the submission, and the schedd lists "
                f"{len(ads)} jobs with its submit id, so none is used (the orphan sweep removes them); start the "
                "server again"
            )
        if ads:
            job_id = f"{ads[0]['ClusterId']}.{ads[0]['ProcId']}"
            self.log.warning(
                "HTCondor client %s: the schedd took job %s before the process died; using it", self.name, job_id
            )
            return job_id
        raise CondorClientError(
            f"the HTCondor client process ({self.name}) died during the submission, before the schedd took the job "
            "(nothing was submitted); start the server again"
        )

    async def _call(self, method: str, *args, timeout: float):
        if self._lock is None:
            self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        async with self._lock:
            worker = await self._ready()
            request = _Request(next(self._ids), method, list(args), loop.create_future(), loop.time(), timeout)
            line = request.line()  # before it counts as sent (arguments that are not JSON fail here)
            worker.busy = request
            try:
                # write() hands the whole line to the pipe's transport at once, so a cancel in drain()
                # below never leaves half a request in the pipe: the worker gets all of it, and answers it.
                worker.proc.stdin.write(line)
                await worker.proc.stdin.drain()
                reply = await asyncio.wait_for(asyncio.shield(request.future), max(request.deadline - loop.time(), 0))
            except asyncio.CancelledError:
                self._abandon(worker, request, "its caller was cancelled")
                raise
            except TimeoutError:
                self._abandon(worker, request, f"no answer within {timeout:g} s")
                raise
            except ConnectionError as err:  # the pipe broke: the process died
                self._abandon(worker, request, "the pipe broke")
                self._kill(worker)
                raise WorkerDiedError(f"the HTCondor client process ({self.name}) died: {err}") from None
        if "error" in reply:
            raise CondorClientError(reply["error"])
        return reply["result"]

    def _abandon(self, worker: _Worker, request: _Request, why: str) -> None:
        """The caller is gone: its answer goes to nobody; its process is killed if it hangs on."""
        if request.state != WAITING:
            return
        request.state = ABANDONED
        if request.future.done():
            # The answer arrived just as the caller gave up.
            if not request.future.cancelled() and request.future.exception() is None:
                self._late(request, request.future.result(), why)
            return
        if worker.busy is request:
            # Give it until its deadline plus the grace (by default its timeout again), then kill it.
            loop = asyncio.get_running_loop()
            grace = self.late_grace if self.late_grace is not None else request.deadline - request.sent_at
            worker.timer = loop.call_at(max(request.deadline, loop.time()) + grace, self._overdue, worker, request)
        self.log.debug("HTCondor client %s: request %d (%s) abandoned: %s", self.name, request.id, request.method, why)

    def _overdue(self, worker: _Worker, request: _Request) -> None:
        worker.timer = None
        if worker.busy is request:
            self.log.warning(
                "HTCondor client %s: process %d still runs abandoned request %d (%s) past its deadline; killed",
                self.name,
                worker.proc.pid,
                request.id,
                request.method,
            )
            self._kill(worker)

    def _late(self, request: _Request, reply: dict, why: str = "its caller gave up") -> None:
        self.log.debug(
            "Dropping the answer to request %d (%s) of HTCondor client %s: %s",
            request.id,
            request.method,
            self.name,
            why,
        )
        if self.on_late_reply is not None:
            try:
                self.on_late_reply(request.method, request.args, reply)
            except Exception:
                self.log.exception("Handling the late answer to %s failed", request.method)

    async def _read(self, worker: _Worker) -> None:
        """Hand each answer of ``worker`` to the request it answers, matched by id."""
        problem = "exited; see the hub log"
        exited = False  # it closed its stdout itself (it is exiting): no kill needed
        try:
            while True:
                line = await worker.proc.stdout.readline()
                if not line:
                    exited = True
                    break
                try:
                    reply = json.loads(line)
                    reply_id = reply.get("id") if isinstance(reply, dict) else None
                except ValueError:
                    reply, reply_id = None, None
                request = worker.busy
                if request is None or reply_id != request.id:
                    # Never hand an answer to a request it does not name: a worker out of step is replaced.
                    self.log.warning(
                        "HTCondor client %s: process %d answered request %r while running %r; killed",
                        self.name,
                        worker.proc.pid,
                        reply_id,
                        request.id if request else None,
                    )
                    problem = "answered out of step"
                    break
                worker.busy = None
                if worker.timer is not None:
                    worker.timer.cancel()
                    worker.timer = None
                if request.state == WAITING:
                    request.future.set_result(reply)
                else:
                    self._late(request, reply)
        except ValueError:  # a line over LINE_LIMIT
            problem = f"sent an answer over {self.LINE_LIMIT // 2**20} MiB"
            self.log.warning("HTCondor client %s: process %d %s; killed", self.name, worker.proc.pid, problem)
        finally:
            request, worker.busy = worker.busy, None
            if exited:
                self._forget(worker)
            else:
                self._kill(worker)
            if request is not None:
                if request.state == WAITING:
                    request.future.set_exception(
                        WorkerDiedError(f"the HTCondor client process ({self.name}) {problem}")
                    )
                else:
                    self.log.debug(
                        "HTCondor client %s: abandoned request %d (%s) ended without an answer (process gone)",
                        self.name,
                        request.id,
                        request.method,
                    )
            try:
                await asyncio.wait_for(worker.proc.wait(), 10)
            except TimeoutError:  # it closed its stdout but lingers
                self._kill(worker)
            except Exception:
                pass

    # -- shutdown ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process of this lane (hub shutdown); calls in flight fail."""
        for worker in [w for w in [self._worker, *self._retired] if w is not None]:
            self._kill(worker)

    kill = close

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Until the readers of killed processes have finished (so no task outlives the event loop)."""
        readers = list(self._readers)
        if readers:
            await asyncio.wait(readers, timeout=timeout)
