"""Single-user side of courses: the jupyter-server extension every condorhub server loads.

Runs the same on the login node and in an HTCondor job. The hub passes the student's courses in
``$CONDORHUB_COURSES`` (see :func:`condorhub.courses.handlers.course_environment`). At load it

- confines nbgitpuller's ``/git-pull`` links to ``~/courses/`` and the student's course folders
  (:mod:`.links`), and
- registers ``{base_url}condorhub/api/courses``, the state of the course pulls (:mod:`.background`),
  and the Lab's *Publish to course…* API (:mod:`.publish`, for instructors);

once the server listens it pulls every course in the background, so a slow course repository never
delays or fails the server's start.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyter_server.utils import url_path_join

from .background import CoursePulls, CourseStateHandler, courses_from_env
from .links import confine_nbgitpuller
from .publish import handlers as publish_handlers

STATE_PATH = "condorhub/api/courses"


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def _jupyter_server_extension_points():
    return [{"module": "condorhub.lab.courses.sync"}]


def _load_jupyter_server_extension(server_app):
    home = _home()
    courses = courses_from_env(server_app.log)
    pulls = CoursePulls(courses, home, server_app.log)
    server_app.web_app.settings["condorhub_course_pulls"] = pulls
    confine_nbgitpuller(server_app, lambda: [str(home / c["target"]) for c in courses])
    web_app = server_app.web_app
    web_app.add_handlers(
        ".*",
        [
            (url_path_join(web_app.settings["base_url"], STATE_PATH), CourseStateHandler, {"pulls": pulls}),
            *publish_handlers(web_app.settings["base_url"]),
        ],
    )


async def _start_jupyter_server_extension(server_app):
    # Called by jupyter-server once its event loop runs and the server listens; returns at once.
    pulls = server_app.web_app.settings.get("condorhub_course_pulls")
    if pulls is not None and pulls.courses:
        pulls.task = asyncio.get_running_loop().create_task(pulls.run_all())
