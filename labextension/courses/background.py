"""Course pulls in the background, after the server listens, with a state the Lab shows.

Pulling used to happen while the extension loaded, before the server answered: one slow course
repository (up to :data:`PULL_TIMEOUT` per course) made the server miss the hub's ``http_timeout`` and
failed every student's start. Now the server answers at once; each course is pulled concurrently in its
own child process with a deadline, and ``GET {base_url}condorhub/api/courses`` reports per course
``waiting`` / ``pulling`` / ``done`` / ``failed`` / ``unpublished`` (the Lab's courses plugin shows it as
notifications). Pulling uses nbgitpuller, whose merge never overwrites a file the student changed.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jupyter_server.base.handlers import APIHandler
from tornado import web

ENV = "CONDORHUB_COURSES"
PULL_TIMEOUT = 120
ACTIVE = ("waiting", "pulling")


@dataclass
class CourseState:
    slug: str
    folder: str
    state: str = "waiting"
    message: str = ""
    started: float | None = None
    finished: float | None = None


def courses_from_env(log) -> list[dict]:
    try:
        courses = json.loads(os.environ.get(ENV) or "[]")
    except json.JSONDecodeError:
        log.error("$%s is not valid JSON; no course is updated", ENV)
        return []
    return [c for c in courses if isinstance(c, dict) and {"slug", "source", "branch", "target"} <= set(c)]


@dataclass
class CoursePulls:
    courses: list[dict]
    home: Path
    log: logging.Logger
    timeout: float = PULL_TIMEOUT
    states: dict[str, CourseState] = field(default_factory=dict)
    _children: set[int] = field(default_factory=set)

    def __post_init__(self):
        self.states = {c["slug"]: CourseState(c["slug"], c["target"]) for c in self.courses}
        atexit.register(self.kill_children)  # a stuck pull must not outlive the server

    def snapshot(self) -> list[dict]:
        return [asdict(s) for s in self.states.values()]

    async def run_all(self) -> None:
        await asyncio.gather(*(self.pull(course) for course in self.courses), return_exceptions=True)

    def _set(self, slug: str, state: str, message: str = "") -> None:
        entry = self.states[slug]
        entry.state, entry.message = state, message
        if state == "pulling":
            entry.started = time.time()
        elif state not in ACTIVE:
            entry.finished = time.time()
        (self.log.error if state == "failed" else self.log.info)("course %s: %s %s", slug, state, message)

    async def _run(self, args: list[str], timeout: float) -> tuple[int, str]:
        # Own session, so a deadline kills git and everything it started.
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.home,
            start_new_session=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},  # never wait for a password nobody types
        )
        self._children.add(proc.pid)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except BaseException:
            _killpg(proc.pid)
            await proc.wait()
            raise
        finally:
            self._children.discard(proc.pid)
        # communicate() returned, so the process has exited and has a return code
        return proc.returncode or 0, out.decode(errors="replace")

    async def pull(self, course: dict) -> None:
        slug, source, branch = course["slug"], course["source"], course["branch"]
        local = "://" not in source
        if local and not any(os.path.exists(os.path.join(source, p)) for p in ("HEAD", ".git")):
            # A hub-managed course whose instructors have not published anything yet.
            self._set(slug, "unpublished", "nothing published yet")
            return
        deadline = time.monotonic() + self.timeout
        self._set(slug, "pulling")
        try:
            # First git itself: nbgitpuller hides git's message when the repository cannot be reached.
            rc, out = await self._run(["git", "ls-remote", "--heads", "--", source, branch], self.timeout)
            if rc != 0:
                self._set(slug, "failed", failure_reason(out) or f"git ls-remote exit status {rc}")
                return
            if not out.strip():
                if local:
                    self._set(slug, "unpublished", "nothing published yet")
                else:
                    self._set(slug, "failed", f"{source} has no branch {branch}")
                return
            target = self.home / course["target"]
            target.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-c", "from nbgitpuller.pull import main; main()", source, branch, str(target)]
            rc, out = await self._run(cmd, max(deadline - time.monotonic(), 1))
        except TimeoutError:
            self._set(slug, "failed", f"no answer from {source} within {self.timeout:.0f} s")
            return
        except Exception as err:  # one course's problem never stops the others or the server
            self._set(slug, "failed", str(err))
            return
        if rc != 0:
            self._set(slug, "failed", failure_reason(out) or f"exit status {rc}")
        else:
            self._set(slug, "done", f"up to date in ~/{course['target']}")

    def kill_children(self) -> None:
        for pid in list(self._children):
            _killpg(pid)


def failure_reason(output: str) -> str:
    """git's own complaint (its last ``fatal:``/``error:`` line) out of nbgitpuller's output and traceback."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    git_lines = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (git_lines or lines or [""])[-1][:1000]


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class CourseStateHandler(APIHandler):
    """GET {base_url}condorhub/api/courses → {"courses": [{slug, folder, state, message, started, finished}]}"""

    def initialize(self, pulls: CoursePulls):
        self.pulls = pulls

    @web.authenticated
    def get(self):
        self.finish({"courses": self.pulls.snapshot()})
