"""The idle culler service, ``python -m condorhub.culler``: jupyterhub-idle-culler asking the hub per server.

The hub starts it as a managed service (:mod:`condorhub.culling` builds the command line and its role).
It is jupyterhub-idle-culler 2.0 unchanged, with one ``cull_arbiter_hook``: a server idle for less than
``--timeout`` (the shortest idle timeout of any profile) is kept without a request; for any other one the hub,
which knows the server's profile, decides (``POST /hub/api/condorhub/culling/<user>/<server>``) and records why
before the culler's ``DELETE``. When the hub does not answer, the server is kept: better an idle server than a
stop nobody can explain.

No configuration file is loaded (the culler's default is ``idle_culler_config.py`` in the working directory,
executed as Python by a process with the power to stop every server).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from jupyterhub_idle_culler import IdleCuller
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import default

#: The hub's decision endpoint, under the hub API URL (see condorhub.culling.CULL_API_PATTERN).
DECIDE_PATH = "condorhub/culling"


class HubArbiter:
    """``cull_arbiter_hook``: the culler's prefilter on the shortest timeout, then the hub's per-profile answer."""

    def __init__(self, api_url: str, token: str, log: Any, timeout: float = 20):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.log = log
        self.timeout = timeout

    def decide_url(self, full_name: str) -> str:
        user, _, server = full_name.partition("/")
        return f"{self.api_url}/{DECIDE_PATH}/{quote(user, safe='')}/{quote(server, safe='')}"

    async def __call__(self, *, inactive: timedelta, inactive_limit: float, server: dict, **_: Any) -> bool:
        if inactive.total_seconds() < inactive_limit:
            return False  # idle for less than any profile's timeout
        request = HTTPRequest(
            self.decide_url(server["full_name"]),
            method="POST",
            body=b"{}",
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            request_timeout=self.timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
            answer = json.loads(response.body)
        except Exception as err:  # any failure keeps the server: the next round asks again
            self.log.warning("The hub did not say whether to cull %s (%s); kept", server["full_name"], err)
            return False
        if answer.get("cull"):
            return True
        self.log.debug("Keeping %s: %s", server["full_name"], answer.get("why"))
        return False


class CondorhubIdleCuller(IdleCuller):
    @default("config_file")
    def _no_config_file(self) -> str:
        return ""  # everything comes from the command line the hub writes

    def start(self):
        self.cull_arbiter_hook = HubArbiter(
            self.url or os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"], self.log
        )
        super().start()


def main() -> None:
    CondorhubIdleCuller.launch_instance()


if __name__ == "__main__":
    main()
