"""The hub API endpoint a starting job reports its port to: ``POST /hub/api/condorhub/port``.

batchspawner's own handler (``/hub/api/batchspawner``) sets *any* attribute of the spawner that the
request names (``{"cmd": ..., "ip": ...}`` would do), for whichever server of the token's user it finds.
This one accepts exactly ``{"port": <int>, "host": <str, optional>}``, only with the server's own API
token (the one handed to that job), only while that server is starting, and the spawner checks the host
against the node HTCondor runs the job on. Registered through ``c.JupyterHub.extra_handlers`` by
:func:`condorhub.traits.apply_htcondor`; importing :mod:`.spawner` removes batchspawner's handler.
"""

from __future__ import annotations

import hmac
import json
import re

from jupyterhub.apihandlers import APIHandler
from tornado import web

#: URL pattern, relative to the hub's prefix (JupyterHub adds /hub/).
PORT_API_PATTERN = r"/api/condorhub/port"

_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$|^[0-9a-fA-F:.]{2,45}$"
)


def parse_port_report(body: bytes) -> tuple[int, str | None]:
    """Validate a port report; raises HTTPError(400) naming the problem."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        raise web.HTTPError(400, 'The body must be JSON: {"port": <number>, "host": <name>}') from None
    if not isinstance(data, dict):
        raise web.HTTPError(400, "The body must be a JSON object with `port` (and optionally `host`)")
    extra = sorted(set(data) - {"port", "host"})
    if extra:
        raise web.HTTPError(
            400, f"Unsupported field(s) {', '.join(map(repr, extra))}: only `port` and `host` are accepted"
        )
    port = data.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535:
        raise web.HTTPError(400, f"`port` must be a number from 1024 to 65535, not {port!r}")
    host = data.get("host")
    if host is not None and (not isinstance(host, str) or not _HOST.match(host)):
        raise web.HTTPError(400, f"`host` must be a host name or IP address, not {host!r}")
    return port, host


class PortReportHandler(APIHandler):
    """A starting server's job reports the port its Jupyter server will listen on."""

    async def post(self):
        token = self.get_auth_token()
        user = self.current_user
        if not token or user is None or not getattr(self, "_token_authenticated", False):
            raise web.HTTPError(403, "Report the port with the server's API token (Authorization: token ...)")
        port, host = parse_port_report(self.request.body)
        spawners = getattr(user, "spawners", None) or {}
        owner = None
        for spawner in spawners.values():
            api_token = spawner.api_token or ""
            if api_token and hmac.compare_digest(api_token.encode(), token.encode()):
                owner = spawner
                break
        if owner is None:
            # Another server's token, a user's own API token, or a server that was stopped meanwhile.
            raise web.HTTPError(403, "This token belongs to no server of yours that is starting")
        target = getattr(owner, "child_spawner", None) or owner
        accept = getattr(target, "accept_port", None)
        if accept is None:
            raise web.HTTPError(409, "This server is not an HTCondor server; it has no port to report")
        await accept(port, host)
        self.set_status(200)
        self.finish(json.dumps({"message": f"port {port} accepted"}))
