"""condorhub's own Prometheus metrics, served with JupyterHub's on ``/hub/metrics``.

JupyterHub serves prometheus_client's default registry; every metric object condorhub exports is created
here, once, with its help text, so the names (all ``condorhub_*``) and their meaning have one owner.
Other modules only call the small ``record_*`` functions below (the queue view, the HTCondor spawner, the
idle culling), and :func:`apply_metrics` (from condorhub.traits) adds what is computed at scrape time:

- servers by phase and profile, counted from the spawners the hub holds at the moment of the scrape
  (never inc/dec bookkeeping, which drifts when a start fails half-way or the hub restarts);
- GPUs used and free in the pool, from the spawn form's cached pool status
  (:class:`condorhub.spawner.condor.pool_status.PoolStatus`): a scrape reads the last answer and at most
  starts one fresh query in the background when it is older than ``PoolStatus.max_age``, so Prometheus
  never makes the hub hammer the collector, and a scrape never waits for the pool.

Who may read them: JupyterHub asks for the ``read:metrics`` scope (``authenticate_prometheus``); the site
file's ``metrics.token_file`` makes a hub service (``metrics.service``) with that scope only, whose token
Prometheus sends (the prometheus Ansible role writes both sides).
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from condorhub.schema import SiteConfig

# -- counted where it happens ---------------------------------------------------------------------------

CULLS = Counter(
    "condorhub_culls_total",
    "Servers stopped by the idle culler, by profile (a GPU server culled gives its GPU back before its runtime limit).",
    ["profile"],
)

# The names of these three predate this module (benchmarks/condor_spawn.py reads the first one).
SCHEDD_QUERIES = Counter(
    "condorhub_schedd_queries_total",
    "Schedd queries made by the hub's shared queue view: one per poll cycle for all servers together.",
)
SCHEDD_QUERY_FAILURES = Counter(
    "condorhub_schedd_query_failures_total",
    "Schedd queries of the queue view that failed, took longer than htcondor.query_timeout, or were not started "
    "because the previous one still hung (the queue is then 'unknown'; servers are kept for htcondor.unknown_grace).",
)
COLLECTOR_QUERIES = Counter(
    "condorhub_collector_queries_total",
    "Collector (slot ad) queries of the queue view, made only while some server job waits (to say why).",
)

SCHEDD_QUERY_SECONDS = Histogram(
    "condorhub_schedd_query_seconds",
    "How long the queue view's schedd query took to answer (answered queries only; failures are counted in "
    "condorhub_schedd_query_failures_total).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60),
)
QUEUE_REFRESH_SECONDS = Histogram(
    "condorhub_queue_refresh_seconds",
    "Duration of one queue view refresh (the schedd query, and the collector query while jobs wait), "
    "failed ones included.",
)
QUEUE_WAIT_SECONDS = Histogram(
    "condorhub_queue_wait_seconds",
    "How long HTCondor servers waited in the queue, from submission until their job ran on a node, by profile.",
    ["profile"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)


def _profile_label(slug: str | None) -> str:
    return slug or "unknown"


def record_cull(profile_slug: str) -> None:
    """Count one server of profile ``profile_slug`` stopped for being idle (called by the idle culling)."""
    CULLS.labels(profile=_profile_label(profile_slug)).inc()


def record_queue_wait(profile_slug: str, seconds: float) -> None:
    """One HTCondor server's job started to run after waiting ``seconds`` in the queue."""
    QUEUE_WAIT_SECONDS.labels(profile=_profile_label(profile_slug)).observe(max(seconds, 0.0))


def record_schedd_query(seconds: float | None) -> None:
    """A schedd query of the queue view answered after ``seconds``, or failed (None: an error, no answer within
    the query timeout, or none started because the previous one still hangs). SCHEDD_QUERIES counts the
    queries started, where they start."""
    if seconds is None:
        SCHEDD_QUERY_FAILURES.inc()
    else:
        SCHEDD_QUERY_SECONDS.observe(seconds)


# -- computed at scrape time ----------------------------------------------------------------------------

#: A server's phase as the metrics name it (the course page and the home page say the same in words).
PHASES = ("queued", "starting", "running", "stopping")

SERVERS_HELP = (
    "The hub's servers by phase (queued: an HTCondor job waiting for a slot; starting; running: ready for its "
    "user; stopping) and resource profile, counted from the hub's spawners at each scrape."
)


def server_phase(spawner: Any) -> str | None:
    """The phase of one spawner's server (None: not running, not starting, not stopping)."""
    if not spawner.active:
        return None
    if spawner.pending == "stop":
        return "stopping"
    if spawner.ready:
        return "running"
    # An HTCondor server with a job but no node yet is still in the queue (condorhub.courses.page says the same).
    child = getattr(spawner, "child_spawner", None)
    if getattr(child, "job_id", "") and not getattr(child, "node", ""):
        return "queued"
    return "starting"


class ServersCollector(Collector):
    """``condorhub_servers{phase, profile}``: every site profile and phase is present, 0 when none is."""

    def __init__(self, users: Callable[[], Iterable[Any]], profiles: Iterable[str]):
        self._users = users
        self._profiles = list(profiles)

    def describe(self) -> Iterator[Metric]:
        # Given, so that registering does not call collect() (the hub is not up yet then).
        yield GaugeMetricFamily("condorhub_servers", SERVERS_HELP, labels=["phase", "profile"])

    def collect(self) -> Iterator[Metric]:
        counts = {(phase, profile): 0 for phase in PHASES for profile in self._profiles}
        for user in list(self._users()):
            for spawner in list(user.spawners.values()):
                phase = server_phase(spawner)
                if phase is not None:
                    key = (phase, _profile_label(getattr(getattr(spawner, "profile", None), "slug", "")))
                    counts[key] = counts.get(key, 0) + 1
        family = GaugeMetricFamily("condorhub_servers", SERVERS_HELP, labels=["phase", "profile"])
        for (phase, profile), count in sorted(counts.items()):
            family.add_metric([phase, profile], count)
        yield family


POOL_GPUS_HELP = (
    "GPUs of the pool's open execute nodes (Owner and Drained machines left out), used and free, as the spawn "
    "form's pool status last saw them (at most PoolStatus.max_age old, one scrape later)."
)
POOL_UP_HELP = "1 when the pool status's last query pair (collector and schedd) answered, 0 when it failed."
POOL_AGE_HELP = "Seconds since the pool status's last answer (condorhub_pool_gpus is this old)."


class PoolCollector(Collector):
    """``condorhub_pool_gpus{state}``, ``condorhub_pool_status_up`` and its age, from the cached pool status.

    A scrape cannot wait (JupyterHub renders the registry synchronously on its event loop), so it reports
    the cached answer and, when that is older than ``PoolStatus.max_age``, starts the next query pair in the
    background (:meth:`PoolStatus.snapshot` merges it with the spawn form's). Nothing is reported before the
    first answer.
    """

    def __init__(self, pool_status: Callable[[], Any]):
        self._pool_status = pool_status

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("condorhub_pool_gpus", POOL_GPUS_HELP, labels=["state"])
        yield GaugeMetricFamily("condorhub_pool_status_up", POOL_UP_HELP)
        yield GaugeMetricFamily("condorhub_pool_status_age_seconds", POOL_AGE_HELP)

    def collect(self) -> Iterator[Metric]:
        from condorhub.spawner.condor.pool_status import gpu_counts

        pool = self._pool_status()
        snapshot, age = pool.cached()
        if age is None or age >= pool.max_age:
            _refresh_in_background(pool)
        if age is None:
            return  # never asked yet: no answer to report
        yield GaugeMetricFamily("condorhub_pool_status_up", POOL_UP_HELP, value=int(snapshot is not None))
        yield GaugeMetricFamily("condorhub_pool_status_age_seconds", POOL_AGE_HELP, value=age)
        if snapshot is not None:
            free, total = gpu_counts(snapshot.slots)
            gpus = GaugeMetricFamily("condorhub_pool_gpus", POOL_GPUS_HELP, labels=["state"])
            gpus.add_metric(["used"], total - free)
            gpus.add_metric(["free"], free)
            yield gpus


_background: set[asyncio.Future] = set()


def _refresh_in_background(pool: Any) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # not on the hub's event loop (a test rendering the registry): report what is cached
    future = asyncio.ensure_future(pool.snapshot())
    _background.add(future)
    future.add_done_callback(_done)


def _done(future: asyncio.Future) -> None:
    _background.discard(future)
    # PoolStatus logs and caches its own failures; retrieving the outcome keeps asyncio from logging it again.
    if not future.cancelled():
        future.exception()


# -- wiring into the hub --------------------------------------------------------------------------------

_registered: dict[str, Collector] = {}


def register(name: str, collector: Collector) -> None:
    """Put ``collector`` into the default registry under ``name``, replacing one registered before (the
    hub loads its configuration once, tests load it several times in one process)."""
    old = _registered.pop(name, None)
    if old is not None:
        REGISTRY.unregister(old)
    REGISTRY.register(collector)
    _registered[name] = collector


def hub_users() -> Iterable[Any]:
    """The users the running hub holds in memory (every user with a server is loaded at hub start)."""
    from jupyterhub.app import JupyterHub

    if not JupyterHub.initialized():
        return []
    return JupyterHub.instance().users.values()


def hub_pool_status() -> Any:
    """The hub's one PoolStatus, configured as the spawn form's is (the hub's own configuration)."""
    from jupyterhub.app import JupyterHub

    from condorhub.spawner.condor.pool_status import PoolStatus

    config = JupyterHub.instance().config if JupyterHub.initialized() else None
    return PoolStatus.instance(config=config) if config is not None else PoolStatus.instance()


class MetricsTokenError(ValueError):
    """The metrics token file is missing, empty or readable by others; the message says how to fix it."""


def read_token_file(path: os.PathLike | str, owner_uid: int = 0) -> str:
    """The metrics service's token, from a root-owned file no other user may read (the prometheus group may).

    ``owner_uid`` is the owner required (root; the unit tests run as anyone)."""
    try:
        # O_NOFOLLOW and fstat on what was opened: a link planted in the path is refused, and the checks below
        # are about the very file read.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MetricsTokenError(
            f"metrics.token_file {path} does not exist: write a random token there (the prometheus Ansible role "
            "does, e.g. `openssl rand -hex 32`), or remove metrics.token_file"
        ) from None
    except OSError as err:
        raise MetricsTokenError(f"metrics.token_file {path} cannot be opened: {err.strerror}") from None
    with os.fdopen(fd) as fh:
        info = os.fstat(fh.fileno())
        token = fh.read(4096).strip() if stat.S_ISREG(info.st_mode) else ""
    if info.st_uid != owner_uid or info.st_mode & (stat.S_IWGRP | stat.S_IRWXO):
        raise MetricsTokenError(
            f"metrics.token_file {path} must be owned by root and neither writable by its group nor readable by "
            f"others (it is uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}): "
            f"chown root:prometheus {path} && chmod 0640 {path}"
        )
    if len(token) < 32:
        raise MetricsTokenError(
            f"metrics.token_file {path} holds {len(token)} characters; use a random token of at least 32 "
            "(`openssl rand -hex 32`)"
        )
    return token


def apply_metrics(c, site: SiteConfig) -> None:
    """Register the scrape-time collectors and, with ``metrics.token_file``, the service Prometheus uses."""
    register("servers", ServersCollector(hub_users, [profile.slug for profile in site.profiles]))
    # Each profile's series exist from the start (0), not only after the first cull or wait: a dashboard's
    # rate() and an alert see them at once.
    for profile in site.profiles:
        CULLS.labels(profile=profile.slug)
        if profile.kind == "condor":
            QUEUE_WAIT_SECONDS.labels(profile=profile.slug)
    if site.htcondor is not None:
        register("pool", PoolCollector(hub_pool_status))
    metrics = site.metrics
    if metrics.token_file is None:
        return
    try:
        token = read_token_file(metrics.token_file)
    except MetricsTokenError as err:
        # As a bad site file does (jupyterhub_config.py): stop before JupyterHub starts, with the fix, no traceback.
        print(f"condorhub: {err}", file=sys.stderr)
        sys.exit(2)
    c.JupyterHub.services = [
        *c.JupyterHub.get("services", []),
        {"name": metrics.service, "api_token": token, "display": False},
    ]
    # The service may read /hub/metrics and nothing else (no user, server or token of anyone).
    c.JupyterHub.load_roles = [
        *c.JupyterHub.get("load_roles", []),
        {
            "name": "condorhub-metrics",
            "description": "Read the hub's Prometheus metrics",
            "scopes": ["read:metrics"],
            "services": [metrics.service],
        },
    ]
