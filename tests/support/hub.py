"""A real condorhub for end-to-end tests: JupyterHub as a subprocess (which starts configurable-http-proxy
from npm), configured by a site file like production, and a browser-like HTTP client.

Nothing is mocked: login goes through the real login form (XSRF cookie and field included) to the real
OpenLDAP started by the suite, and servers are real jupyterhub-singleuser processes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from devstack.directory import GROUP_ROLES
from devstack.run import kill_process_groups, server_pids

from .ports import free_port

VENV_BIN = Path(sys.executable).parent
PROXY_BIN = Path(os.environ.get("CONDORHUB_PREFIX", "/opt/condorhub")) / "node" / "node_modules" / ".bin"


def demo_site(ldap_uri: str, suffix: str, state_dir: Path, *, connect_timeout=2.0, receive_timeout=3.0) -> dict:
    """A site file for the test directory (plain LDAP on loopback: the test slapd has no certificate)."""
    host, port = re.match(r"ldap://([^:/]+):(\d+)", ldap_uri).groups()
    return {
        "hub": {
            "bind_url": f"http://127.0.0.1:{free_port()}",
            "hub_bind_url": f"http://127.0.0.1:{free_port()}",
            "proxy_api_url": f"http://127.0.0.1:{free_port()}",
            "state_dir": str(state_dir),
            "server_venv": str(VENV_BIN.parent),
            "server_start_timeout": 60,
        },
        "ldap": {
            "server_address": host,
            "server_port": int(port),
            "tls": {"strategy": "insecure"},
            "connect_timeout": connect_timeout,
            "receive_timeout": receive_timeout,
            "bind_dn_template": [f"uid={{username}},ou=people,{suffix}"],
            "user_search_base": f"ou=people,{suffix}",
        },
        "roles": {"groups": dict(GROUP_ROLES)},
        "login_throttle": {"free_failures": 5, "max_delay": 30},
        "profiles": [
            {
                "slug": "login-node",
                "kind": "login_node",
                "display_name": "Login node (no GPU)",
                "roles": ["student", "researcher", "instructor", "guest", "admin"],
                "cpus": 1,
                "memory": "2G",
            }
        ],
    }


class Hub:
    """One JupyterHub subprocess with its own state dir, ports and log file."""

    def __init__(self, workdir: Path, site: dict, extra_args: list[str] | None = None):
        self.workdir = workdir
        self.site = site
        # JupyterHub command-line settings for what the site file does not expose (test-only tuning,
        # e.g. --HTCondorQueue.orphan_min_age=5).
        self.extra_args = list(extra_args or [])
        self.site_file = workdir / "site.yaml"
        self.log_file = workdir / "hub.log"
        self.url = site["hub"]["bind_url"].rstrip("/")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Hub:
        self.site_file.write_text(yaml.safe_dump(self.site))
        env = dict(os.environ)
        env["PATH"] = f"{VENV_BIN}:{PROXY_BIN}:{env.get('PATH', '')}"
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "condorhub"), "hub", "--site", str(self.site_file), *(["--", *self.extra_args] if self.extra_args else [])],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"hub did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGTERM to the whole session: the hub and the proxy it started. Servers live in their own
        # sessions (cleanup_servers is off), the tests stop them through the API first.
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def server_pids(self) -> list[int]:
        """Single-user servers of this hub (they run in their own sessions and outlive it by design)."""
        return server_pids(self.site["hub"]["hub_bind_url"])

    def kill_servers(self) -> None:
        kill_process_groups(self.server_pids())

    def client(self) -> HubClient:
        return HubClient(self.url)


class HubClient:
    """What a browser does: cookies, the login form with its XSRF token, the spawn form."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def _xsrf(self) -> str:
        # The hub's token (path /hub/); a single-user server sets its own _xsrf under /user/<name>/.
        found = [c for c in self.http.cookies if c.name == "_xsrf"]
        hub = [c for c in found if (c.path or "/").startswith("/hub")]
        return (hub or found)[0].value if found else ""

    def login_page(self) -> requests.Response:
        return self.http.get(f"{self.url}/hub/login", timeout=10)

    def login(self, username: str, password: str, timeout: float = 30, follow: bool = True) -> requests.Response:
        """Post the login form; returns the final response (the login page again if it failed).

        A browser follows the redirect after a successful login to /hub/user/<name>/, which starts the
        default server when there is no choice to make; ``follow=False`` stops before that.
        """
        page = self.login_page()
        page.raise_for_status()
        token = self._xsrf()
        assert token, "the login page set no _xsrf cookie"
        return self.http.post(
            f"{self.url}/hub/login?next=",
            data={"username": username, "password": password, "_xsrf": token},
            timeout=timeout,
            allow_redirects=follow,
        )

    def logged_in_as(self) -> str | None:
        r = self.http.get(f"{self.url}/hub/api/user", headers={"X-XSRFToken": self._xsrf()}, timeout=10)
        return r.json().get("name") if r.status_code == 200 else None

    def api(self, method: str, path: str, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        headers.setdefault("X-XSRFToken", self._xsrf())
        return self.http.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=kw.pop("timeout", 15), **kw)

    def spawn_form(self, fields: dict | None = None) -> requests.Response:
        """Open /hub/spawn; post the form with ``fields`` when it shows one."""
        page = self.http.get(f"{self.url}/hub/spawn", timeout=30)
        if fields is None or "<form" not in page.text or 'name="profile"' not in page.text:
            return page
        return self.http.post(f"{self.url}/hub/spawn", data={**fields, "_xsrf": self._xsrf()}, timeout=30)

    def wait_for_server(self, user: str, timeout: float = 90) -> dict:
        """Poll the user's server through the proxy until its /api/status answers."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            # The Lab page first, as a browser would: it walks the OAuth redirects that give this client
            # the server's cookie; the JSON API alone answers 403 instead of redirecting.
            lab = self.http.get(f"{self.url}/user/{user}/lab", timeout=10)
            if lab.status_code == 200 and lab.url.startswith(f"{self.url}/user/{user}/"):
                last = self.http.get(f"{self.url}/user/{user}/api/status", timeout=10)
                if last.status_code == 200:
                    return last.json()
            time.sleep(0.5)
        raise AssertionError(f"server of {user} did not answer: {last.status_code if last else lab.status_code}")


def clean_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
