"""When HTCondor ends this server, and when the Lab warns before it.

HTCondor ends a job ``allowed_job_duration`` (the profile's `runtime`) after the job started to run, which
the hub cannot know when it writes the server's environment (before submission). So the hub passes the
runtime (``CONDORHUB_SERVER_RUNTIME``, seconds) and the server adds it to its job's start
(``JobCurrentStartDate`` in the job ad HTCondor writes for the job, ``$_CONDOR_JOB_AD``), or to its own start
where there is no job ad: a few seconds later than the job's start, so the warning comes that much late at
worst. ``CONDORHUB_SERVER_DEADLINE`` (epoch seconds) sets the end directly. Login-node servers have none.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from jupyter_server.base.handlers import APIHandler
from tornado import web

LIMITS_PATH = "condorhub/api/limits"
DEADLINE_ENV = "CONDORHUB_SERVER_DEADLINE"
RUNTIME_ENV = "CONDORHUB_SERVER_RUNTIME"
WARNINGS_ENV = "CONDORHUB_LIMIT_WARNINGS"
#: Seconds before the end at which the Lab warns, when the hub says nothing (ProfileSpawner's defaults).
DEFAULT_WARNINGS = (900, 300)
_START = re.compile(r"^JobCurrentStartDate\s*=\s*(\d+)\s*$", re.MULTILINE)


def job_start(job_ad_path: str | None) -> float | None:
    """``JobCurrentStartDate`` from the job ad file HTCondor gives the job, or None."""
    if not job_ad_path:
        return None
    try:
        with open(job_ad_path, encoding="utf-8", errors="replace") as ad:
            match = _START.search(ad.read(1_000_000))
    except OSError:
        return None
    return float(match.group(1)) if match else None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def parse_warnings(text: str | None) -> tuple[int, ...]:
    """``"900,300"`` → (900, 300), largest first; bad entries are left out, nothing usable → the defaults."""
    if text is None:
        return DEFAULT_WARNINGS
    found = {round(v) for v in (_number(part.strip()) for part in text.split(",")) if v}
    return tuple(sorted(found, reverse=True))


@dataclass(frozen=True)
class Limits:
    deadline: float | None  # epoch seconds; None: no runtime limit
    warnings: tuple[int, ...] = field(default=DEFAULT_WARNINGS)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], started: float | None = None) -> Limits:
        warnings = parse_warnings(environ.get(WARNINGS_ENV))
        deadline = _number(environ.get(DEADLINE_ENV))
        if deadline is None:
            runtime = _number(environ.get(RUNTIME_ENV))
            if runtime is not None:
                start = job_start(environ.get("_CONDOR_JOB_AD")) or started or time.time()
                deadline = start + runtime
        return cls(deadline, warnings)

    def as_json(self, now: float | None = None) -> dict:
        # The server's clock too: the browser's may be off, the Lab counts from the server's.
        return {"deadline": self.deadline, "warnings": list(self.warnings), "now": time.time() if now is None else now}


class LimitsHandler(APIHandler):
    """GET {base_url}condorhub/api/limits → {"deadline": <epoch s or null>, "warnings": [900, 300], "now": ...}"""

    def initialize(self, limits: Limits):
        self.limits = limits

    @web.authenticated
    def get(self):
        self.finish(self.limits.as_json())
