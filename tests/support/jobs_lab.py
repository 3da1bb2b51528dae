"""A real Jupyter server with condorhub's extension running AS a pool user (their uid/gid, their home as the
root), with the HTCondor environment the hub gives a server (issue 12): the user's own CONDOR_CONFIG and
token (tests/support/user_tokens.py), CONDORHUB_JOB_PROFILES, CONDORHUB_SCAN_MAX_POINTS. The Jobs API
(labextension/jobs/) then submits as the user, as in production.

The server runs on this host (like a login-node server); its jobs run on the pool's node, in the node's
worker environment (CONDORHUB_JOB_PYTHON: the host's venv does not exist in the node). Homes are the
same path on both, so job output appears in the server's root as it is written.

Fixture ``jobs_lab`` (registered in tests/conftest.py): a factory ``(user="alice", profiles=..., env=...) ->
JobsLab``, stopped after the test; ``JobsLab.api(method, path, json=...)`` calls the REST API with the
server's token.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from devstack.directory import DEMO_USERS
from devstack.node_root import WORKER_VENV

from .ports import free_port
from .user_tokens import UserClient, write_user_client

#: The profiles of the tests' student, as the hub would send them (site file order).
STUDENT_PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "description": "1 CPU", "cpus": 1, "memory_mb": 256, "gpus": 0,
     "runtime_seconds": 1800, "gpus_minimum_capability": None, "gpus_minimum_memory_mb": None},
    {"slug": "gpu1", "display_name": "1 GPU", "description": "1 GPU", "cpus": 1, "memory_mb": 256, "gpus": 1,
     "runtime_seconds": 1800, "gpus_minimum_capability": None, "gpus_minimum_memory_mb": None},
]  # fmt: skip

#: The interpreter jobs run with on the pool's node (its worker environment).
NODE_PYTHON = f"{WORKER_VENV}/bin/python"


def demo_user(name: str):
    return next(u for u in DEMO_USERS if u.uid == name)


class JobsLab:
    """One user's running server; ``api`` calls its REST API (never raises on 4xx/5xx)."""

    def __init__(self, user: str, home: Path, env: dict[str, str], log: Path):
        demo = demo_user(user)
        self.user, self.home, self.uid, self.gid = user, home, demo.uid_number, demo.gid_number
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log
        #: The HTCondor environment the server got (CONDOR_CONFIG, profiles, ...): what its kernels inherit.
        self.server_env = dict(env)
        full_env = {
            "HOME": str(home), "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **env,
        }  # fmt: skip
        uid, gid = self.uid, self.gid

        def drop() -> None:
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)

        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                 f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={home}",
                 "--ServerApp.open_browser=False", "--ServerApp.port_retries=0"],
                env=full_env, cwd=home, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=drop,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{user}'s server exited: {self.log()}"
            try:
                if self.api("GET", "api/status").code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"{user}'s server did not come up: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, method: str, path: str, *, json_body=None, params=None, timeout: float = 60) -> Reply:
        response = requests.request(method, self.url + path, headers={"Authorization": f"token {self.token}"},
                                    json=json_body, params=params, timeout=timeout, allow_redirects=False)  # fmt: skip
        return Reply(response)

    def jobs_api(self, method: str, path: str, **kwargs) -> Reply:
        return self.api(method, "condorhub/api/" + path, **kwargs)

    def write(self, rel: str, text: str, mode: int = 0o644) -> Path:
        """A file in the user's home, owned by the user (as if they had written it in the Lab)."""
        path = self.home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
        for p in [path, *[q for q in path.parents if self.home in q.parents]]:
            os.lchown(p, self.uid, self.gid)
        return path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Reply:
    def __init__(self, response: requests.Response):
        self.code = response.status_code
        self.text = response.text
        try:
            self.json = response.json()
        except ValueError:
            self.json = None

    @property
    def message(self) -> str:
        return self.json.get("message", "") if isinstance(self.json, dict) else ""

    def __repr__(self) -> str:
        return f"<Reply {self.code} {self.text[:400]!r}>"


def server_env(client: UserClient | None, profiles: list[dict] | None, **extra: str) -> dict[str, str]:
    """What the hub puts into the user's server for the Jobs API."""
    env = dict(client.env) if client else {}
    if profiles is not None:
        env["CONDORHUB_JOB_PROFILES"] = json.dumps(profiles)
    env["CONDORHUB_JOB_PYTHON"] = NODE_PYTHON
    env.update(extra)
    return env


@pytest.fixture
def jobs_lab(condor_pool, ldap_home_base) -> Callable[..., JobsLab]:
    """Factory ``(user="alice", profiles=STUDENT_PROFILES, env=None, client=True) -> JobsLab``: the user's
    server with their own HTCondor client (a fresh token) and profiles; ``env`` adds or overrides
    variables (e.g. a CONDOR_CONFIG that points nowhere). Stopped and cleaned up after the test."""
    started: list[JobsLab] = []
    folders: list[Path] = []

    def make(user: str = "alice", profiles: list[dict] | None = None, env: dict[str, str] | None = None,
             client: bool = True) -> JobsLab:  # fmt: skip
        home = Path(ldap_home_base) / user
        user_client = None
        if client:
            directory = home / f".condorhub-jobs-client-{secrets.token_hex(3)}"
            folders.append(directory)
            user_client = write_user_client(condor_pool, user, directory)
        log = home / f".jobs-lab-{secrets.token_hex(3)}.log"
        folders.append(log)
        lab = JobsLab(user, home, {**server_env(user_client, profiles or STUDENT_PROFILES), **(env or {})}, log)
        started.append(lab)
        return lab

    yield make
    for lab in started:
        lab.stop()
    for path in folders:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
