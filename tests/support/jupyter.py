# ruff: noqa: F811  (a fixture that takes another as a parameter repeats the imported fixture's name)
"""A real jupyter-server with condorhub's server extension, through pytest-jupyter's fixtures.

Registered as a plugin by tests/conftest.py. pytest-jupyter itself is not loaded as a plugin: its hooks
take over coroutine tests (which the rest of the suite runs with pytest-asyncio), and two of its fixtures
are autouse (an event loop for every test, a ServerApp torn down after every test). So this module takes
its fixtures by name, leaves its hooks and those two behind, and provides ``jp_asyncio_loop`` itself,
used only by the tests that start a server (through ``jp_serverapp``), and cleaning the server up after
them as pytest-jupyter's ``jp_server_cleanup`` does. The tests are plain functions that drive the
server's loop with ``run``.
"""

from __future__ import annotations

import json

import pytest
from jupyter_core.utils import ensure_event_loop
from jupyter_server.serverapp import ServerApp
# Every fixture of pytest-jupyter but the two autouse ones (jp_asyncio_loop below; jp_server_config is ours).
from pytest_jupyter.jupyter_server import (  # noqa: F401  (fixtures, registered by name)
    echo_kernel_spec,
    http_server,
    http_server_client,
    http_server_port,
    io_loop,
    jp_argv,
    jp_auth_header,
    jp_base_url,
    jp_config_dir,
    jp_configurable_serverapp,
    jp_create_notebook,
    jp_data_dir,
    jp_env_config_path,
    jp_env_jupyter_path,
    jp_environ,
    jp_extension_environ,
    jp_fetch,
    jp_home_dir,
    jp_http_port,
    jp_kernel_dir,
    jp_logging_stream,
    jp_nbconvert_templates,
    jp_root_dir,
    jp_runtime_dir,
    jp_server_auth_core_resources,
    jp_server_auth_resources,
    jp_server_authorizer,
    jp_serverapp,
    jp_system_config_path,
    jp_system_jupyter_path,
    jp_template_dir,
    jp_web_app,
    jp_ws_fetch,
    send_request,
)
from tornado.httpclient import HTTPResponse


@pytest.fixture
def jp_asyncio_loop():
    """pytest-jupyter's event loop (not autouse here), and afterwards its server clean-up
    (``jp_server_cleanup``): stop the server the test started, forget the ServerApp singleton."""
    loop = ensure_event_loop(prefer_selector_loop=True)
    yield loop
    app = ServerApp.instance()
    try:
        loop.run_until_complete(app._cleanup())
    except (RuntimeError, SystemExit) as exc:
        print("ignoring cleanup error", exc)
    if hasattr(app, "kernel_manager"):
        app.kernel_manager.context.destroy()
    ServerApp.clear_instance()
    loop.close()


@pytest.fixture
def jp_server_config(jp_data_dir):
    return {"ServerApp": {"jpserver_extensions": {"condorhub.lab": True}}}


class Reply:
    """A response with its JSON decoded (or None), for short asserts."""

    def __init__(self, response: HTTPResponse):
        self.code = response.code
        self.raw = response
        body = response.body or b""
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None
        self.text = body.decode(errors="replace")

    @property
    def message(self) -> str:
        return (self.json or {}).get("message", "") if isinstance(self.json, dict) else ""

    def __repr__(self):
        return f"<Reply {self.code} {self.text[:300]!r}>"


@pytest.fixture
def run(jp_serverapp, jp_asyncio_loop):
    """Run a coroutine on the server's event loop (the server only serves while it runs)."""
    return jp_asyncio_loop.run_until_complete


@pytest.fixture
def api(jp_fetch, run):
    """``api(method, "condorhub/api/...", json=..., params=..., headers=...)`` → Reply; never raises on 4xx."""

    def call(method: str, path: str, *, json_body=None, params=None, headers=None, timeout=30):
        # No redirect following: the tests look at redirects themselves (and the test client cannot).
        kwargs = {"method": method, "raise_error": False, "request_timeout": timeout, "follow_redirects": False}
        if json_body is not None:
            kwargs["body"] = json.dumps(json_body)
        elif method in ("POST", "PUT"):
            kwargs["body"] = b""
        if method == "DELETE":
            kwargs["allow_nonstandard_methods"] = True
        # One piece: jp_fetch joins pieces without the trailing slash that some URLs need.
        return Reply(run(jp_fetch(path, params=params, headers=headers, **kwargs)))

    return call


@pytest.fixture
def browser_session(jp_fetch, jp_serverapp, run):
    """A cookie session like a browser's after logging in at /login with the token (no Authorization
    header afterwards). ``browser_session(method, path, xsrf=True, headers=..., json_body=...)`` → Reply;
    ``xsrf`` sends the X-XSRFToken header the Lab sends."""
    from http.cookies import SimpleCookie

    jar: dict[str, str] = {}

    def remember(response):
        for header in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                jar[name] = morsel.value

    def cookie_header():
        return "; ".join(f"{k}={v}" for k, v in jar.items())

    no_auth = {"Authorization": ""}
    remember(run(jp_fetch("login", headers=no_auth, raise_error=False, follow_redirects=False)))
    token = jp_serverapp.identity_provider.token
    body = f"password={token}&_xsrf={jar['_xsrf']}"
    login = run(jp_fetch("login", method="POST", body=body, raise_error=False, follow_redirects=False,
                         headers={**no_auth, "Cookie": cookie_header()}))
    assert login.code == 302, login.code
    remember(login)

    def call(method, path, *, xsrf=True, headers=None, json_body=None, params=None, body=None):
        h = {**no_auth, "Cookie": cookie_header(), **(headers or {})}
        if xsrf:
            h["X-XSRFToken"] = jar["_xsrf"]
        kwargs = {"method": method, "raise_error": False, "follow_redirects": False}
        if body is not None:
            kwargs["body"] = body
        elif json_body is not None or method in ("POST", "PUT"):
            kwargs["body"] = json.dumps(json_body) if json_body is not None else b""
        return Reply(run(jp_fetch(path, headers=h, params=params, **kwargs)))

    return call
