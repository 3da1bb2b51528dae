"""The one way this server calls the hub's REST API: as its owner, with the server's own API token.

The Lab's page cannot call the hub itself (the hub's cookie has path /hub/, and a page script must never
hold a token), so handlers of this server forward to the hub. JupyterHub gives every server
``$JUPYTERHUB_API_URL`` (an address this machine can reach: the hub's, on a GPU node too) and
``$JUPYTERHUB_API_TOKEN``, a token of the server's owner with only the scopes of
``Spawner.server_token_scopes`` that the owner holds: whatever it is used for, the hub acts as that user.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class HubAPIError(Exception):
    """The hub refused or could not be reached; ``status`` and the hub's own message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HubAPI:
    url: str
    token: str

    @classmethod
    def from_env(cls, environ=os.environ) -> HubAPI | None:
        """The hub of this server, or None outside JupyterHub (a plain ``jupyter lab``)."""
        url, token = environ.get("JUPYTERHUB_API_URL", ""), environ.get("JUPYTERHUB_API_TOKEN", "")
        return cls(url.rstrip("/"), token) if url and token else None

    async def request(self, method: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
        """``method`` ``{url}/{path}`` with a JSON body; the JSON answer, or HubAPIError with the hub's message."""
        request = HTTPRequest(
            f"{self.url}/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else None,
            connect_timeout=10,
            request_timeout=timeout,
        )
        # Our own client: the loop's shared one may be configured by another extension.
        client = AsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(request)
        except HTTPClientError as err:
            if err.code == 599:  # tornado's "no HTTP answer": refused, timed out, reset
                raise HubAPIError(503, f"the hub did not answer ({err.message}); try again") from None
            raise HubAPIError(err.code, _message(err.response.body if err.response else b"", err.code)) from None
        except OSError as err:
            raise HubAPIError(503, f"the hub cannot be reached ({err}); try again") from None
        finally:
            client.close()
        try:
            return json.loads(response.body or b"{}")
        except ValueError:
            raise HubAPIError(502, "the hub's answer is not JSON") from None


def _message(body: bytes, status: int) -> str:
    """JupyterHub's error JSON is {"status": ..., "message": ...}; its message is written for people."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return message or f"the hub answered {status}"
