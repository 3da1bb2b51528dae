"""The user's HTCondor queue, through the ``htcondor2`` bindings with the user's own credential.

The server runs as the user and the hub gave it ``CONDOR_CONFIG`` (pool, schedd, the user's IDTOKEN):
every call here authenticates as the user, so the schedd itself decides what this user may do (their
own jobs only, the role's limits at submit). Nothing here runs as root.

The bindings block, so every call runs on the app's small thread pool (never on the event loop, which
serves the user's kernels and file browser). A schedd that cannot be reached is :class:`QueueUnreachable`
(answered 503 with HTCondor's reason); a submit the schedd refuses is :class:`PoolRefused` (400, with the
pool's reason, e.g. a role limit).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

from condorhub.spawner.condor.client import locate_schedd

from .describe import Description
from .model import ATTRIBUTES

T = TypeVar("T")

#: Words in HTCondor's messages that mean the daemon was not reached (rather than that it said no).
_UNREACHABLE_HINTS = (
    "connect",
    "locate",
    "contact",
    "timed out",
    "timeout",
    "no route",
    "authenticat",
    "communicat",
    "find address",
)


class QueueUnreachable(RuntimeError):
    """The schedd (or the collector that names it) did not answer."""


class PoolRefused(RuntimeError):
    """The schedd answered and refused (a submit requirement, a permission)."""


class JobNotFound(LookupError):
    pass


def _plain(ad: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ad.keys():  # noqa: SIM118 - a ClassAd is not a dict; keys() is its documented listing
        try:
            out[key] = ad.eval(key)
        except Exception:
            out[key] = None
    # Evaluated ClassAd values: undefined/error become classad2.Value objects; plain Python for the rest.
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else None) for k, v in out.items()}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class JobQueue:
    """The user's jobs on the schedd of ``CONDOR_CONFIG``.

    :param owner: the user's name as the schedd records it (``Owner``): the API lists only these jobs.
    :param executor: where the blocking binding calls run.
    :param history_days: finished jobs younger than this are listed.
    :param history_max: at most this many finished jobs are listed.
    """

    #: Seconds a located schedd address is reused (locating costs a collector query per call).
    LOCATE_TTL = 60.0

    def __init__(self, owner: str, executor: Executor, history_days: float = 7, history_max: int = 200):
        self.owner = owner
        self.executor = executor
        self.history_days = history_days
        self.history_max = history_max
        self._schedd: Any = None
        self._located = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

    async def _run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(func, *args, **kwargs))

    def _schedd_now(self) -> Any:
        import htcondor2

        with self._lock:
            if self._schedd is None or time.monotonic() - self._located > self.LOCATE_TTL:
                try:
                    # By the configuration's SCHEDD_HOST (a GPU node has no schedd of its own), else the local one.
                    self._schedd = htcondor2.Schedd(locate_schedd())
                except Exception as err:  # HTCondorException, or the collector's ad lacking an address
                    self._schedd = None
                    raise QueueUnreachable(_reason(err)) from None
                self._located = time.monotonic()
            return self._schedd

    def _call(self, what: Callable[[Any], T], *, refusal: bool = False) -> T:
        """``what(schedd)``; a failure means unreachable unless ``refusal`` and HTCondor's message says the
        schedd answered."""
        schedd = self._schedd_now()
        try:
            return what(schedd)
        except Exception as err:
            reason = _reason(err)
            if refusal and not _looks_unreachable(reason):
                raise PoolRefused(reason) from None
            with self._lock:
                self._schedd = None  # locate again next time: the schedd may have moved
            raise QueueUnreachable(reason) from None

    def _mine(self, extra: str = "") -> str:
        # The hub's own server jobs of this user are not listed: removing one would stop the very server.
        base = f"Owner == {_quote(self.owner)} && CondorhubServer =?= undefined"
        return f"{base} && ({extra})" if extra else base

    # ------------------------------------------------------------------ blocking calls

    def _list(self) -> tuple[list[dict], list[dict]]:
        queue = self._call(lambda s: s.query(constraint=self._mine(), projection=list(ATTRIBUTES)))
        cutoff = int(time.time() - self.history_days * 86400)
        history = self._call(
            lambda s: s.history(
                constraint=self._mine(),
                projection=list(ATTRIBUTES),
                match=self.history_max,
                since=f"EnteredCurrentStatus < {cutoff}",
            )
        )
        return [_plain(ad) for ad in queue], [_plain(ad) for ad in history]

    def _job(self, cluster: int, proc: int) -> dict:
        which = self._mine(f"ClusterId == {cluster} && ProcId == {proc}")
        ads = self._call(lambda s: s.query(constraint=which, projection=list(ATTRIBUTES), limit=1))
        if not ads:
            ads = self._call(lambda s: s.history(constraint=which, projection=list(ATTRIBUTES), match=1))
        if not ads:
            raise JobNotFound(f"there is no job {cluster}.{proc} of yours (in the queue or the recent history)")
        return _plain(ads[0])

    def _scan(self, cluster: int) -> tuple[list[dict], list[dict]]:
        which = self._mine(f"CondorhubScan =?= {cluster}")
        queue = self._call(lambda s: s.query(constraint=which, projection=list(ATTRIBUTES)))
        # History newest first: stop at jobs older than the scan (a resubmitted point is a later cluster).
        history = self._call(
            lambda s: s.history(constraint=which, projection=list(ATTRIBUTES), since=f"ClusterId < {cluster}")
        )
        return [_plain(ad) for ad in queue], [_plain(ad) for ad in history]

    def _act(self, action: str, cluster: int, proc: int) -> None:
        import htcondor2

        self._job(cluster, proc)  # ours? (404 otherwise; the schedd would refuse another's job anyway)
        kind = {
            "remove": htcondor2.JobAction.Remove,
            "hold": htcondor2.JobAction.Hold,
            "release": htcondor2.JobAction.Release,
        }[action]
        # A (text, code) pair: the bindings drop a plain string reason (htcondor2 25's act()). The schedd
        # adds "(by user <owner>)".
        reason = (f"{_past(action).capitalize()} from the Lab's Jobs panel", None)
        result = self._call(lambda s: s.act(kind, [f"{cluster}.{proc}"], reason=reason), refusal=True)
        counts = {k: int(result.get(k) or 0) for k in ("TotalSuccess", "TotalPermissionDenied", "TotalBadStatus")}
        if counts["TotalSuccess"] < 1:
            if counts["TotalPermissionDenied"]:
                raise PoolRefused(f"the schedd did not let you {action} job {cluster}.{proc}")
            raise PoolRefused(f"job {cluster}.{proc} cannot be {_past(action)} in its current state")

    def _submit(self, description: Description) -> int:
        import htcondor2

        submit = htcondor2.Submit(dict(description.commands))
        if description.queue_names:
            items = iter([dict(item) for item in description.items])
            result = self._call(lambda s: s.submit(submit, itemdata=items), refusal=True)
        else:
            result = self._call(lambda s: s.submit(submit, count=1), refusal=True)
        return int(result.cluster())

    # ------------------------------------------------------------------ async API

    async def list_jobs(self) -> tuple[list[dict], list[dict]]:
        return await self._run(self._list)

    async def job(self, cluster: int, proc: int) -> dict:
        return await self._run(self._job, cluster, proc)

    async def scan(self, cluster: int) -> tuple[list[dict], list[dict]]:
        return await self._run(self._scan, cluster)

    async def act(self, action: str, cluster: int, proc: int) -> None:
        await self._run(self._act, action, cluster, proc)

    async def submit(self, description: Description) -> int:
        return await self._run(self._submit, description)


def _past(action: str) -> str:
    return {"remove": "removed", "hold": "held", "release": "released"}.get(action, action)


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:500]


def _looks_unreachable(reason: str) -> bool:
    low = reason.lower()
    return any(hint in low for hint in _UNREACHABLE_HINTS)


def no_access_reason(environ: Mapping[str, str]) -> str | None:
    """Why this server cannot use HTCondor at all (no configuration from the hub), or None."""
    if not environ.get("CONDOR_CONFIG"):
        return "this server has no HTCondor access (no CONDOR_CONFIG from the hub); start a new server"
    return None
