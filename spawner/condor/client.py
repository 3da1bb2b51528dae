"""The hub's HTCondor client: the few calls condorhub makes, through the ``htcondor2`` bindings.

Every method here blocks (the bindings talk to the daemons synchronously). Worse, the bindings keep
Python's GIL in some network paths: a query to a schedd that stopped answering (a "resume session"
handshake waiting for its timeout) froze every thread of the process, the hub's event loop included, for
20 s in our tests. A thread executor is therefore not enough: :class:`WorkerLane` runs the client in a
separate **worker process** (:mod:`.worker`, which imports neither JupyterHub nor anything of the hub) and
the hub only awaits a pipe. A hung call costs a worker process, never the hub: it is killed and replaced.

It knows nothing of JupyterHub: plain dicts in, plain dicts out, which also keeps the queue logic
testable with a fake client.

Authentication: the bindings read the HTCondor configuration once per process. A site points the hub at
it with ``condor_config`` (what CONDOR_CONFIG would name) and may hand it an IDTOKEN file; HTCondor reads
tokens from a *directory*, so the file is copied into a private one (mode 0700) that the configuration
then names.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import threading
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


def _plain(ad: Mapping) -> dict[str, Any]:
    """A ClassAd as a dict of plain Python values (expressions that cannot be evaluated become None)."""
    out: dict[str, Any] = {}
    for key in ad.keys():
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
                    location = self._collector().locate(htcondor2.DaemonType.Schedd, self.schedd_name)
                except Exception as err:
                    which = f"schedd {self.schedd_name!r}" if self.schedd_name else "a schedd"
                    raise CondorClientError(
                        f"the collector ({self.collector_address or 'COLLECTOR_HOST'}) does not know {which}: "
                        f"{err}. Is the pool up, and `htcondor.schedd` right?"
                    ) from None
                self._schedd = htcondor2.Schedd(location)
            return self._schedd

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


class WorkerLane:
    """One worker process (:mod:`.worker`) that runs :class:`CondorClient` calls, one at a time.

    Async all the way: the hub writes a JSON line to the worker's stdin and awaits its answer on stdout,
    so no thread of the hub ever sits inside the bindings. A call that does not answer within its timeout
    kills the worker (a call stuck inside the bindings cannot be interrupted any other way); the next call
    starts a fresh one.
    """

    # A query of a big queue is one long JSON line.
    LINE_LIMIT = 256 * 1024 * 1024

    def __init__(self, name: str, settings: dict, log=None):
        self.name = name
        self.settings = dict(settings)
        self.log = log
        self._proc = None
        self._lock = None

    async def _ensure(self):
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "condorhub.spawner.condor.worker",
                json.dumps(self.settings),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=self.LINE_LIMIT,
                # Its own process group: a hub stopped with Ctrl-C or SIGTERM to its group is not affected
                # differently, but a kill() here never reaches the hub.
                start_new_session=True,
            )
        return self._proc

    async def call(self, method: str, *args, timeout: float):
        """``CondorClient.<method>(*args)`` in the worker; raises CondorClientError or TimeoutError."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            proc = await self._ensure()
            try:
                proc.stdin.write((json.dumps({"method": method, "args": list(args)}) + "\n").encode())
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), timeout)
            except asyncio.TimeoutError:
                self.kill()
                raise
            except (ConnectionError, BrokenPipeError) as err:
                self.kill()
                raise CondorClientError(f"the HTCondor client process ({self.name}) died: {err}") from None
            if not line:
                self.kill()
                raise CondorClientError(f"the HTCondor client process ({self.name}) exited; see the hub log")
            reply = json.loads(line)
            if "error" in reply:
                raise CondorClientError(reply["error"])
            return reply["result"]

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass

    close = kill
