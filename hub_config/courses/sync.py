"""Single-user side: when the server starts, bring each of the student's courses into their home.

Runs as a jupyter-server extension, so it works the same on the login node and in an HTCondor job. The
hub passes the courses in ``$CONDORHUB_COURSES`` (see :func:`condorhub.courses.handlers.course_environment`).
Pulling uses nbgitpuller, whose merge never overwrites a file the student changed: local edits are kept,
new and untouched files are updated, files the student deleted come back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = "CONDORHUB_COURSES"
PULL_TIMEOUT = 120


def pull(course: dict, home: Path, log) -> bool:
    source = course["source"]
    if "://" not in source and not os.path.exists(source):
        # A hub-managed course whose instructors have not published anything yet.
        log.info("course %s: nothing published yet", course["slug"])
        return False
    target = home / course["target"]
    target.parent.mkdir(parents=True, exist_ok=True)
    # nbgitpuller's command-line entry point, in a child process so a stuck pull has a deadline.
    cmd = [
        sys.executable, "-c", "from nbgitpuller.pull import main; main()",
        course["source"], course["branch"], str(target),
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=PULL_TIMEOUT, cwd=home)
    except subprocess.TimeoutExpired:
        log.error("course %s: pull from %s took longer than %s s", course["slug"], course["source"], PULL_TIMEOUT)
        return False
    if result.returncode != 0:
        log.error("course %s: pull from %s failed: %s", course["slug"], course["source"], result.stderr[-2000:])
        return False
    log.info("course %s: up to date in %s", course["slug"], target)
    return True


def sync_courses(log) -> int:
    try:
        courses = json.loads(os.environ.get(ENV) or "[]")
    except json.JSONDecodeError:
        log.error("$%s is not valid JSON; no course was updated", ENV)
        return 0
    home = Path(os.environ.get("HOME") or Path.home())
    return sum(pull(course, home, log) for course in courses)


def _jupyter_server_extension_points():
    return [{"module": "condorhub.courses.sync"}]


def _load_jupyter_server_extension(server_app):
    # Before the server answers, so the course is there when the Lab opens.
    sync_courses(server_app.log)
