"""Reverse proxy from the Lab server to a TensorBoard on a Unix socket, behind the server's login.

    {base_url}condorhub/tensorboard/<id>/...        an instance of the manager
    {base_url}condorhub/tensorboard-port/<port>/... a TensorBoard the user started with %tensorboard in a
                                                    notebook (TENSORBOARD_PROXY_URL points here; <port> is
                                                    the number in its info file, see magic.py)

Both go to sockets in the server's private directory only (private.py), each checked to be the user's
before every connection (manager.SocketResolver): no TCP port, so neither a TensorBoard another user
started nor any other local service can be put in the Lab's origin, and no other user can read the runs.

The URL prefix is stripped and the rest forwarded; TensorBoard's pages use relative URLs, which resolve
correctly as long as the page URL ends in a slash, hence the redirect for ``.../<id>``.

We write our own instead of using jupyter-server-proxy: it cannot stop a process, and its start timeout
(5 s by default) turns a slow TensorBoard start into a 504.
"""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import httpclient, web

from .manager import TensorBoardError, TensorBoardManager

# Hop-by-hop headers (RFC 9110 §7.6.1) and what must not cross the proxy: the user's Jupyter/JupyterHub
# credentials stay with the Jupyter server, and TensorBoard's cookies must not overwrite them.
_DROP_REQUEST = {
    "host", "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "content-length", "cookie", "authorization", "x-xsrftoken",
}  # fmt: skip
_DROP_RESPONSE = {
    "connection", "keep-alive", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade",
    "content-length", "set-cookie", "server", "date",
}  # fmt: skip


class TensorBoardProxyBase(ExtensionHandlerMixin, JupyterHandler):
    # Seeing TensorBoard runs code of the user's (the same permission as kernels).
    auth_resource = "kernels"

    @property
    def tensorboards(self) -> TensorBoardManager:
        """The extension's manager (CondorhubLab.tensorboards; jupyter-server types extensionapp as any app)."""
        return self.extensionapp.tensorboards  # type: ignore[attr-defined]

    @property
    def content_security_policy(self) -> str:
        # The Lab shows TensorBoard in an iframe, so same-origin framing must be allowed here even where
        # the server's default policy forbids all framing (frame-ancestors 'none'); other sites still may not.
        # TensorBoard's own policy (script and data sources) is passed through as a second header.
        return "frame-ancestors 'self'"

    def check_xsrf_cookie(self):
        """TensorBoard's own scripts (fetch GET/POST) cannot send Jupyter's XSRF token; accept a request
        only when the browser says it comes from this same origin (Sec-Fetch-Site, else the Referer).

        A cross-site page can neither set those headers nor read the answers, so this keeps the CSRF
        protection the token gives. JupyterHub's cookie check calls this override (it patches only
        jupyter_server's and tornado's own methods) before it accepts the cookie, and so does
        JupyterHandler.prepare for every non-GET request after authentication.
        """
        site = self.request.headers.get("Sec-Fetch-Site")
        if site in ("same-origin", "none"):  # "none": the user typed the URL or opened a bookmark
            return
        if site is not None:  # a browser says another site made this request
            raise web.HTTPError(
                403, "TensorBoard requests must come from this server's own pages (cross-site request refused)"
            )
        # No Sec-Fetch-Site: not a browser (or an old one). Decide once the user is known.
        if not hasattr(self, "_jupyter_current_user"):
            return  # asked before authentication (tornado); JupyterHandler.prepare asks again after it
        if self.token_authenticated or self.settings.get("disable_check_xsrf", False):
            return  # a token, not a browser's cookie: no cross-site request to guard against
        if not self.check_referer():
            raise web.HTTPError(
                403, "TensorBoard requests must come from this server's own pages (cross-site request refused)"
            )

    def _upstream_path(self, rest: str | None) -> str:
        path = rest or "/"
        query = self.request.query
        return f"{path}?{query}" if query else path

    async def forward(self, upstream: str, rest: str | None) -> None:
        """Send this request to the socket named ``upstream`` (the manager's resolver maps the URL host)."""
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in _DROP_REQUEST}
        body = self.request.body if self.request.method not in ("GET", "HEAD") else None
        request = httpclient.HTTPRequest(
            f"http://{upstream}{self._upstream_path(rest)}",
            method=self.request.method,
            headers=headers,
            body=body if body is not None or self.request.method not in ("POST", "PUT", "PATCH") else b"",
            follow_redirects=False,
            decompress_response=False,  # pass TensorBoard's gzip through untouched
            request_timeout=300,
        )
        try:
            response = await self.tensorboards.http.fetch(request, raise_error=False)
        except OSError as err:
            raise web.HTTPError(502, f"TensorBoard {upstream} does not answer ({err}); reload it") from None
        if response.code == 599:
            raise web.HTTPError(502, f"TensorBoard {upstream} does not answer ({response.error}); reload it")
        self.set_status(response.code, response.reason)
        # Drop the Jupyter defaults that would clash with TensorBoard's (its page sets its own CSP).
        self.clear_header("Content-Type")
        for name, value in response.headers.get_all():
            if name.lower() not in _DROP_RESPONSE:
                self.add_header(name, value)
        if response.body and self.request.method != "HEAD":
            self.write(response.body)
        await self.finish()

    def trailing_slash(self) -> bool:
        """Redirect ``.../<id>`` to ``.../<id>/``: without it TensorBoard's relative URLs miss the prefix."""
        if self.request.path.endswith("/"):
            return False
        url = self.request.path + "/" + (f"?{self.request.query}" if self.request.query else "")
        self.redirect(url, permanent=False)
        return True

    def write_error(self, status_code, **kwargs):
        # A short text the Lab tab (an iframe) can show.
        exc = kwargs.get("exc_info", (None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        if isinstance(exc, web.HTTPError) and exc.log_message and not exc.args:
            message = exc.log_message.replace("%%", "%")  # tornado doubles % in a message without args
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code}: {message}\n")


class InstanceProxyHandler(TensorBoardProxyBase):
    """{base_url}condorhub/tensorboard/<id>/... → that instance."""

    async def _proxy(self, instance_id: str, rest: str | None):
        if not rest and self.trailing_slash():
            return
        manager = self.tensorboards
        try:
            inst = manager.get(instance_id)
        except TensorBoardError as err:
            raise web.HTTPError(err.status, str(err)) from None
        if not inst.ready.is_set():
            # Still starting: hold the request rather than fail it (the trap of short proxy timeouts).
            try:
                await asyncio.wait_for(inst.ready.wait(), manager.startup_timeout)
            except TimeoutError:
                pass
        if inst.state != "running":
            raise web.HTTPError(502, f"TensorBoard for {inst.logdir!r} is {inst.state}: {inst.message or ''}")
        await self.forward(inst.upstream, rest)

    @web.authenticated
    @authorized
    async def get(self, instance_id, rest=None):
        await self._proxy(instance_id, rest)

    @web.authenticated
    @authorized
    async def head(self, instance_id, rest=None):
        await self._proxy(instance_id, rest)

    @web.authenticated
    @authorized
    async def post(self, instance_id, rest=None):
        await self._proxy(instance_id, rest)


class PortProxyHandler(TensorBoardProxyBase):
    """{base_url}condorhub/tensorboard-port/<n>/... → the %tensorboard TensorBoard on ``port-<n>.sock``."""

    async def _proxy(self, port: str, rest: str | None):
        if not rest and self.trailing_slash():
            return
        number = int(port)
        if not self.tensorboards.private.socket(f"port-{number}").exists():
            raise web.HTTPError(
                404,
                f"no TensorBoard of yours for port {number}: only TensorBoards started with %tensorboard in this "
                "server's kernels are proxied (they listen on private sockets, not on TCP ports)",
            )
        await self.forward(f"port-{number}", rest)

    @web.authenticated
    @authorized
    async def get(self, port, rest=None):
        await self._proxy(port, rest)

    @web.authenticated
    @authorized
    async def post(self, port, rest=None):
        await self._proxy(port, rest)
