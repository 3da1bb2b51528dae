"""What every condorhub REST handler shares: authentication, JSON errors, confined paths."""

from __future__ import annotations

from pathlib import Path

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from .paths import PathRefused, resolve_inside


class CondorhubAPIHandler(ExtensionHandlerMixin, APIHandler):
    """JSON API under {base_url}condorhub/api/. Errors are JSON ``{"message": ...}``: the Lab shows them.

    Authentication and XSRF are jupyter-server's (APIHandler): a request without the user's token or
    cookie is refused with 403, and a cookie-authenticated POST/PUT/DELETE needs the X-XSRFToken header.
    """

    @property
    def app(self):
        return self.extensionapp

    @property
    def real_root(self) -> Path:
        return Path(self.serverapp.root_dir).resolve()

    @property
    def allow_hidden(self) -> bool:
        return bool(getattr(self.serverapp.contents_manager, "allow_hidden", False))

    def resolve(self, path: str | None, *, folder: bool = False) -> tuple[Path, str]:
        """Resolve an API path inside the server root, or answer 400/403/404 with the reason."""
        try:
            real, rel = resolve_inside(self.real_root, path)
        except PathRefused as err:
            raise web.HTTPError(err.status, str(err)) from None
        if not self.allow_hidden and any(part.startswith(".") for part in rel.split("/") if part):
            raise web.HTTPError(
                403, f"{rel!r} is hidden; the server does not show hidden files (ContentsManager.allow_hidden)"
            )
        if folder and not real.is_dir():
            raise web.HTTPError(400, f"{rel!r} is not a folder: pick the folder that holds the scan")
        return real, rel

    def json_body(self) -> dict:
        body = self.get_json_body()  # 400 on malformed JSON
        if not isinstance(body, dict):
            raise web.HTTPError(400, 'send a JSON object, e.g. {"path": "scan", "pattern": "..."}')
        return body

    def int_arg(self, body: dict, name: str, default: int, low: int, high: int) -> int:
        value = body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise web.HTTPError(400, f"{name} must be a whole number from {low} to {high}, not {value!r}")
        return value
