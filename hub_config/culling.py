"""Idle culling, the hub's side: jupyterhub-idle-culler as a hub service, with an idle timeout per profile.

jupyterhub-idle-culler (the field's tool) has one global ``--timeout``. Its ``cull_arbiter_hook`` (2.0) is
asked about every ready server, but it sees only the REST API's server model: ``user_options`` is not the
profile (a single-profile hub starts servers without one), and the profile is in the spawner's state, which
needs ``admin:server_state``, a scope that reads every server's state. So the culler runs with the shortest
idle timeout of all profiles (a server idle for less is never a candidate, and costs no request) and asks the
hub about each candidate (:mod:`condorhub.culler`). The hub knows the server's profile and its timeout, and
answers ``POST /hub/api/condorhub/culling/<user>/<server>`` with whether to stop it. When the answer is yes it
also records, before the culler's ``DELETE`` arrives, why: the user's home page (and the spawn form) say "Your
server was stopped after 30 min without activity (idle timeout of the 1 GPU profile)", and the cull is counted
in ``condorhub_culls_total``. Stopping goes through the hub's ordinary stop, so an HTCondor server's job is
removed and its GPU goes to the next server in the queue.

Activity is JupyterHub's ``last_activity`` of the server: the proxy's traffic to it and what the server
itself reports (jupyter-server's API, kernel and terminal activity). A kernel running one long cell sends
nothing, so the Lab extension counts busy kernels as activity (:mod:`condorhub.lab.limits.activity`); servers
report every ``JUPYTERHUB_ACTIVITY_INTERVAL`` seconds, which :func:`activity_interval` keeps well below the
shortest timeout.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jupyterhub.apihandlers import APIHandler
from tornado import web

from condorhub.schema import CullingSettings, SiteConfig
from condorhub.spawner.choice import format_duration

#: The hub service that runs jupyterhub-idle-culler.
SERVICE_NAME = "idle-culler"
#: Held by the culler service only: may ask the hub whether a server is idle past its profile's timeout.
CULL_SCOPE = "custom:condorhub-culling:decide"
CULL_SCOPE_DEFINITION = {
    "description": "Ask whether a server is idle past its profile's idle timeout (the idle culler)."
}
#: What jupyterhub-idle-culler needs (its README): list users, see their servers' activity, stop servers.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers", CULL_SCOPE]
#: URL pattern, relative to the hub's prefix: the user's name and the server's name ("" for the default).
CULL_API_PATTERN = r"/api/condorhub/culling/([^/]+)/?([^/]*)"
#: JupyterHub's own default of the servers' activity reports (jupyterhub-singleuser).
MAX_ACTIVITY_INTERVAL = 300


def profile_timeouts(site: SiteConfig) -> dict[str, float]:
    """Each profile's idle timeout (its own, else the site's default), by slug."""
    default = site.culling.idle_timeout
    return {profile.slug: profile.idle_timeout or default for profile in site.profiles}


def shortest_timeout(site: SiteConfig) -> float:
    return min([site.culling.idle_timeout, *profile_timeouts(site).values()])


def activity_interval(site: SiteConfig) -> int:
    """How often servers report activity: a third of the shortest idle timeout, at most JupyterHub's 5 min.

    A server reporting less often than its idle timeout could be culled between two reports while in use.
    """
    return max(1, min(MAX_ACTIVITY_INTERVAL, math.floor(shortest_timeout(site) / 3)))


def idle_message(timeout: float, profile_name: str) -> str:
    """What the user reads on the home page and the spawn form after a cull."""
    of = f" of the {profile_name} profile" if profile_name else ""
    return (
        f"Your server was stopped after {format_duration(round(timeout))} without activity (idle timeout{of}). "
        "Your files are kept; start a server again when you need it."
    )


@dataclass(frozen=True)
class Decision:
    cull: bool
    why: str
    inactive: float = 0.0
    idle_timeout: float = 0.0
    profile: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "cull": self.cull,
            "why": self.why,
            "inactive": round(self.inactive, 1),
            "idle_timeout": self.idle_timeout,
            "profile": self.profile,
        }


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # JupyterHub's database keeps naive UTC datetimes.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def decide(spawner: Any, timeouts: dict[str, float], default: float, now: datetime | None = None) -> Decision:
    """Whether ``spawner``'s server has been idle for its profile's idle timeout (pure logic, see the tests)."""
    if not getattr(spawner, "ready", False) or getattr(spawner, "pending", None):
        return Decision(False, "not running (starting, stopping or stopped): never culled")
    profile = getattr(spawner, "profile", None)
    slug = str(getattr(profile, "slug", "") or "")
    # The site's current timeout of the profile: a site that shortens it acts on running servers too.
    timeout = timeouts.get(slug) or getattr(profile, "idle_timeout", None) or default
    orm = spawner.orm_spawner
    last = _as_utc(orm.last_activity) or _as_utc(orm.started)
    if last is None:
        return Decision(False, "no activity and no start time known", idle_timeout=timeout, profile=slug)
    inactive = ((now or datetime.now(UTC)) - last).total_seconds()
    if inactive < timeout:
        return Decision(False, "active within its idle timeout", inactive, timeout, slug)
    return Decision(True, "idle past its idle timeout", inactive, timeout, slug)


def _count_cull(profile_slug: str) -> None:
    from condorhub.metrics import record_cull  # condorhub_culls_total (H7's metrics module)

    record_cull(profile_slug)


class CullDecisionHandler(APIHandler):
    """``POST /hub/api/condorhub/culling/<user>/<server>``: the culler asks; a yes records why it stops."""

    def initialize(self, timeouts: dict[str, float], default: float):
        self.timeouts = timeouts
        self.default_timeout = default

    async def post(self, user_name: str, server_name: str = ""):
        if not self.has_scope(CULL_SCOPE):
            raise web.HTTPError(403, f"Only the idle culler may ask this (scope {CULL_SCOPE}).")
        user = self.find_user(user_name)
        if user is None or server_name not in user.spawners:
            raise web.HTTPError(404, f"No server {server_name!r} of user {user_name!r}.")
        spawner = user.spawners[server_name]
        decision = decide(spawner, self.timeouts, self.default_timeout)
        if decision.cull:
            profile = getattr(spawner, "profile", None)
            reason = idle_message(decision.idle_timeout, str(getattr(profile, "display_name", "") or ""))
            expect = getattr(spawner, "expect_stop", None)
            if expect is not None:
                expect(reason)
            self.log.info(
                "Idle culler stops %s: idle %.0f s, idle timeout %.0f s (profile %s)",
                spawner._log_name,
                decision.inactive,
                decision.idle_timeout,
                decision.profile or "-",
            )
            _count_cull(decision.profile)
        self.finish(json.dumps(decision.as_json()))


def culler_command(site: SiteConfig) -> list[str]:
    """The service's command line: condorhub's entry point around jupyterhub-idle-culler."""
    culling: CullingSettings = site.culling
    return [
        sys.executable,
        "-m",
        "condorhub.culler",
        # The culler's own filter: servers idle for less than the shortest timeout are not even asked about.
        f"--timeout={math.floor(shortest_timeout(site))}",
        f"--cull-every={max(1, math.floor(culling.check_interval))}",
        f"--concurrency={culling.concurrency}",
        # Never delete users (a user's hub account holds their course and credential state).
        "--cull-users=False",
    ]


def apply_culling(c, site: SiteConfig) -> None:
    """The culler service, its role, the decision endpoint and the servers' activity report interval."""
    if not site.culling.enabled:
        return
    c.JupyterHub.services = [
        *c.JupyterHub.get("services", []),
        {"name": SERVICE_NAME, "command": culler_command(site), "display": False},
    ]
    c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), CULL_SCOPE: CULL_SCOPE_DEFINITION}
    c.JupyterHub.load_roles = [
        *c.JupyterHub.get("load_roles", []),
        {
            "name": "condorhub-idle-culler",
            "description": "Stop servers idle past their profile's idle timeout",
            "scopes": CULLER_SCOPES,
            "services": [SERVICE_NAME],
        },
    ]
    c.JupyterHub.extra_handlers = [
        *c.JupyterHub.get("extra_handlers", []),
        (
            CULL_API_PATTERN,
            CullDecisionHandler,
            {"timeouts": profile_timeouts(site), "default": site.culling.idle_timeout},
        ),
    ]
    c.ProfileSpawner.activity_interval = activity_interval(site)
