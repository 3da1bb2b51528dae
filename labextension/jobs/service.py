"""What the Lab server holds for the Jobs API: the profiles and limits from the hub, the user's queue, the
interpreter jobs run with. Made once at the server's start (the environment does not change after)."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from .profiles import Profile, ProfilesError, from_environment
from .queue import JobQueue, no_access_reason

T = TypeVar("T")

PYTHON_ENV = "CONDORHUB_JOB_PYTHON"


def owner_name(environ: Mapping[str, str] = os.environ) -> str:
    """The user's name as the schedd records it (Owner): the Unix account the server runs as. Directory
    users that this machine's NSS does not know (a test's server) fall back to USER / JUPYTERHUB_USER."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return environ.get("USER") or environ.get("LOGNAME") or environ.get("JUPYTERHUB_USER") or str(os.getuid())


class JobsService:
    def __init__(
        self,
        *,
        python: str = "",
        history_days: float = 7,
        history_max: int = 200,
        environ: Mapping[str, str] = os.environ,
        log: logging.Logger | None = None,
    ):
        self.log = log or logging.getLogger(__name__)
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="condorhub-jobs")
        self.profiles: list[Profile] = []
        self.max_points = 1000
        self.problem: str | None = None
        try:
            self.profiles, self.max_points = from_environment(environ)
        except ProfilesError as err:
            self.problem = f"this server has no HTCondor access: {err}"
            self.log.warning("Jobs API: %s", self.problem)
        # The interpreter jobs run with: the server's own environment (shared on every node), unless the hub
        # names the execute nodes' environment (a login-node server's Python may not exist on the nodes).
        self.python = python or environ.get(PYTHON_ENV) or sys.executable
        self.home = environ.get("HOME") or os.path.expanduser("~")
        self.queue = JobQueue(owner_name(environ), self.pool, history_days=history_days, history_max=history_max)
        self._environ = environ

    @property
    def no_access(self) -> str | None:
        """Why the Jobs API cannot submit here (shown by the Lab), or None."""
        if self.problem:
            return self.problem
        reason = no_access_reason(self._environ)
        if reason:
            return reason
        if not self.profiles:
            return "this server has no HTCondor access (the hub gave it no job profiles)"
        return None

    async def in_thread(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(func, *args, **kwargs))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
