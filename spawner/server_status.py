"""The hub home page's "Your server" box: profile, node, HTCondor job and the time left before the runtime limit.

Everything comes from what the spawner already knows (its profile, and for an HTCondor server the job id, the
node and when the job started to run, kept in its state), so rendering the home page asks the pool nothing.
HTCondor ends a job at ``allowed_job_duration`` after it started running, which the profile's `runtime` sets:
the page counts down to that moment in the browser and warns from ``ProfileSpawner.limit_warning`` before it
(hub_config/courses/templates/server_status.html). The data reaches the template as the JupyterHub template
variable ``condorhub_servers`` (:func:`apply_server_status`, called from condorhub.traits).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from .choice import format_duration

#: The template variable the partial reads (a list of dicts, one per active server of the user).
TEMPLATE_VAR = "condorhub_servers"


def format_time_left(seconds: float) -> str:
    """Time left as the page writes it: seconds only in the last hour (``"7 h 59 min"``, ``"14 min 5 s"``)."""
    seconds = max(round(seconds), 0)
    return format_duration(seconds - seconds % 60 if seconds >= 3600 else seconds)


def server_entry(name: str, spawner: Any, login_node: str, now: float | None = None) -> dict | None:
    """What the home page shows of one of the user's servers; None if it is neither running nor starting.

    The page's script keeps ``ends_at`` counting down; ``time_left`` and ``warn`` are the same at render
    time, for a browser without JavaScript.
    """
    if not spawner.active:
        return stopped_entry(name, spawner)
    profile = getattr(spawner, "profile", None)
    child = getattr(spawner, "child_spawner", None)
    entry: dict = {
        "name": name,
        "ready": bool(spawner.ready),
        "pending": spawner.pending or "",
        "profile": getattr(profile, "display_name", "") or "",
        "kind": getattr(profile, "kind", "") or "",
        "node": "",
        "job_id": "",
        "started": 0,
        "runtime_seconds": 0,
        "ends_at": 0,
        "warn_before": float(getattr(spawner, "limit_warning", 0) or 0),
        "runtime": "",
        "time_left": "",
        "warn": False,
    }
    if entry["kind"] == "login_node":
        entry["node"] = login_node
    elif child is not None:
        entry["job_id"] = str(getattr(child, "job_id", "") or "")
        entry["node"] = str(getattr(child, "node", "") or "")
        started = int(getattr(child, "run_started", 0) or 0)
        runtime = round(float(getattr(profile, "runtime", 0) or 0))
        entry["started"] = started
        entry["runtime_seconds"] = runtime
        if started and runtime:
            # HTCondor's allowed_job_duration counts from the job starting to run, not from submission.
            entry["ends_at"] = started + runtime
            entry["runtime"] = format_duration(runtime)
            left = max(entry["ends_at"] - (time.time() if now is None else now), 0)
            entry["time_left"] = format_time_left(left)
            entry["warn"] = bool(entry["warn_before"]) and left <= entry["warn_before"]
    return entry


def stopped_entry(name: str, spawner: Any) -> dict | None:
    """A stopped server whose spawner knows why it stopped (the idle culler, the runtime limit, HTCondor's hold
    reason...), shown until the next start; None when there is nothing to say."""
    reason = str(getattr(spawner, "last_stop_reason", "") or "")
    if not reason:
        return None
    return {"name": name, "stopped": True, "stop_reason": reason}


def servers_of(user: Any, login_node: str | None = None) -> list[dict]:
    """The user's active servers, and stopped ones with the reason why (default first), as
    :func:`server_entry` describes them; [] when logged out."""
    if user is None:
        return []
    node = login_node or socket.gethostname()
    entries = []
    for name in sorted(user.orm_user.orm_spawners, key=lambda n: (n != "", n)):
        entry = server_entry(name, user.spawners[name], node)
        if entry is not None:
            entries.append(entry)
    return entries


def apply_server_status(c) -> None:
    """Add ``condorhub_servers`` to the template variables (condorhub.courses.hub sets the dict first)."""
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars[TEMPLATE_VAR] = servers_of
    c.JupyterHub.template_vars = template_vars
    # A stopped server's box says why, also when an admin or an instructor stopped it.
    from .stop_reasons import apply_stop_reasons

    apply_stop_reasons(c)
