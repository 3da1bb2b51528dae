"""A Lab terminal as a student uses one: opened through the hub's proxy with the user's cookies (the terminals
REST API, then its websocket), a command typed into it, what the terminal shows read back."""

from __future__ import annotations

import json
import time
import uuid

import websocket

from .hub import HubClient


class LabTerminal:
    """One terminal of ``user``'s running server (``client`` logged in as ``user`` and through the server's
    OAuth already: :meth:`HubClient.wait_for_server` does that)."""

    def __init__(self, client: HubClient, user: str, timeout: float = 30):
        self.client, self.user = client, user
        self.base = f"{client.url}/user/{user}"
        self.xsrf = client.http.cookies.get("_xsrf", path=f"/user/{user}/") or client.http.cookies.get("_xsrf")
        reply = client.http.post(f"{self.base}/api/terminals", headers={"X-XSRFToken": self.xsrf}, timeout=timeout)
        assert reply.status_code == 200, f"opening a terminal: {reply.status_code} {reply.text[:500]}"
        self.name = reply.json()["name"]
        cookies = "; ".join(f"{c.name}={c.value}" for c in client.http.cookies)
        url = self.base.replace("http://", "ws://") + f"/terminals/websocket/{self.name}?_xsrf={self.xsrf}"
        self.ws = websocket.create_connection(url, cookie=cookies, origin=client.url, timeout=timeout)
        self.screen = ""

    def run(self, command: str, timeout: float = 60) -> str:
        """Type ``command`` and Enter; return what the terminal printed until the command finished (the
        output between the typed line and the next prompt, as the student reads it)."""
        command = command.strip()  # the markers go on its first and last line
        start, marker = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
        # Markers printed before and after, each typed in two halves: the echo of the typed line (which the
        # terminal may wrap anywhere) contains neither.
        self.ws.send(json.dumps(["stdin", f"echo '{start[:6]}''{start[6:]}'; {command}; "
                                          f"echo '{marker[:6]}''{marker[6:]}'\r"]))
        deadline = time.monotonic() + timeout
        seen = ""
        while marker not in seen.replace("\r", ""):
            if time.monotonic() > deadline:
                raise AssertionError(f"{command!r} did not finish in {timeout:.0f} s; the terminal shows:\n"
                                     f"{seen[-3000:]}")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                kind, *data = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if kind == "stdout":
                seen += data[0]
            elif kind == "disconnect":
                raise AssertionError(f"the terminal closed; it showed:\n{seen[-3000:]}")
        self.screen += seen
        text = seen.replace("\r", "")
        return text.split(start + "\n", 1)[-1].split(marker, 1)[0]

    def close(self) -> None:
        self.ws.close()
        self.client.http.delete(f"{self.base}/api/terminals/{self.name}", headers={"X-XSRFToken": self.xsrf},
                                timeout=30)

    def __enter__(self) -> LabTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
