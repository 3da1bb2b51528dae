"""Why a server stopped, when someone else stopped it: an admin (the admin page) or an instructor (the course
page) through the hub's REST API, ``DELETE /hub/api/users/<user>/server[s/<name>]``.

The spawner's ``stop()`` is not told who asked, and JupyterHub's own handlers come before any a site adds, so
the request is looked at when it ends: JupyterHub's request log function (``log_function`` in its tornado
settings) is wrapped, and a successful stop of another user's server by a person records "Your server was
stopped by carol (an admin of the hub)" as the server's ``last_stop_reason``. The idle culler (a service)
records its own reason beforehand (condorhub.culling), the runtime limit and HTCondor theirs when the hub sees
the job go (condorhub.spawner.condor.spawner); a user who stops their own server needs no reason.
"""

from __future__ import annotations

import re
from typing import Any

#: The stop endpoints, below the hub's prefix: user, then the server's name ("" for the default server).
_STOP = re.compile(r"api/users/([^/]+)/(?:server/?|servers/([^/]+)/?)$")


def stopped_by_message(actor: Any) -> str:
    """What the user reads when ``actor`` (a hub user, not themselves) stopped their server."""
    role = "an admin of the hub" if getattr(actor, "admin", False) else "an instructor of your course"
    return f"Your server was stopped by {actor.name} ({role}). Your files are kept; start a server again to go on."


def stopped_by_other(handler: Any) -> tuple[Any, str, Any] | None:
    """(user, server name, actor) when ``handler`` served a person's successful stop of another user's server."""
    request = handler.request
    if request.method != "DELETE" or handler.get_status() not in (202, 204):
        return None
    prefix = str(getattr(getattr(handler, "hub", None), "base_url", "/hub/"))
    path = request.path[len(prefix) :] if request.path.startswith(prefix) else ""
    match = _STOP.match(path)
    actor = getattr(handler, "_jupyterhub_user", None)  # who the hub authenticated for this request
    if match is None or actor is None or getattr(actor, "kind", "") != "user":
        return None
    name, server = match.group(1), match.group(2) or ""
    if actor.name == name:
        return None
    user = handler.find_user(name)
    if user is None or server not in user.orm_spawners:
        return None
    return user, server, actor


def record_stop_reason(handler: Any) -> None:
    """After the request: keep why another person stopped this user's server (never fails the request)."""
    try:
        found = stopped_by_other(handler)
        if found is None:
            return
        user, server, actor = found
        spawner = user.spawners[server]
        spawner.last_stop_reason = stopped_by_message(actor)
        if not spawner.active:
            # Stopped already (204): its state was saved without the reason. Still stopping (202): the stop's
            # end saves the state, reason included.
            spawner.orm_spawner.state = spawner.get_state()
            handler.db.commit()
    except Exception:
        handler.log.exception("Recording why a server was stopped failed")


def logging_with_stop_reasons(log_function):
    def log_and_record(handler) -> None:
        log_function(handler)
        record_stop_reason(handler)

    return log_and_record


def apply_stop_reasons(c) -> None:
    from jupyterhub.log import log_request  # what JupyterHub itself logs requests with

    settings = dict(c.JupyterHub.get("tornado_settings", {}))
    settings["log_function"] = logging_with_stop_reasons(settings.get("log_function", log_request))
    c.JupyterHub.tornado_settings = settings
