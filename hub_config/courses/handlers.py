"""Hub side of courses: the publish endpoint, the home page's course list, the servers' course list.

The endpoint lives inside the hub (``JupyterHub.extra_handlers``) rather than in a separate service
because it needs the caller's encrypted auth state (their uid and home) and JupyterHub's own session and
XSRF checks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from condorhub.schema import CoursePublishSettings, CourseSettings

from .publish import Instructor, PublishError, course_source, publish_folder

# As LoginNodeSpawner.min_uid: the reader of a publish never runs as root or a system account.
MIN_UID = 1000


def _group_names(user) -> set[str]:
    return {group.name for group in getattr(user, "groups", [])}


def courses_of(user, courses: Sequence[CourseSettings], courses_dir: Path) -> list[dict]:
    """The courses ``user`` takes or teaches, for the home page."""
    groups = _group_names(user)
    mine = []
    for course in courses:
        teaches = course.instructors_group in groups
        takes = course.students_group in groups
        if not (teaches or takes):
            continue
        entry: dict[str, Any] = {
            "slug": course.slug,
            "title": course.title,
            "role": "instructor" if teaches else "student",
            "folder": course.target_dir,
            "source": course_source(courses_dir, course),
            "branch": course.branch,
            "publishable": teaches and not course.repository,
        }
        if teaches:
            # The instructor is not in the students' group: look the group up in the hub's database.
            students_group = orm.Group.find(user.db, course.students_group)
            entry["students"] = sorted(u.name for u in students_group.users) if students_group else []
        mine.append(entry)
    return mine


def course_environment(courses: Sequence[CourseSettings], courses_dir: Path):
    """A callable for ``Spawner.environment``: the student's courses as JSON for :mod:`.sync`."""

    def value(spawner) -> str:
        groups = _group_names(spawner.user)
        return json.dumps(
            [
                {
                    "slug": c.slug,
                    "source": course_source(courses_dir, c),
                    "branch": c.branch,
                    "target": c.target_dir,
                }
                for c in courses
                if c.students_group in groups
            ]
        )

    return value


class CoursePublishHandler(APIHandler):
    """POST /hub/api/condorhub/courses/<slug>/publish  {"folder": "<folder in your home>"}

    Only an instructor of that course may publish; the reply says what was published.
    """

    def initialize(self, courses: Sequence[CourseSettings], courses_dir: Path, settings: CoursePublishSettings):
        self.courses = {c.slug: c for c in courses}
        self.courses_dir = courses_dir
        self.publish_settings = settings

    @web.authenticated
    async def post(self, slug: str):
        user = self.current_user
        course = self.courses.get(slug)
        if course is None:
            raise web.HTTPError(404, f"There is no course {slug!r}.")
        if course.instructors_group not in _group_names(user):
            raise web.HTTPError(
                403, f"Only instructors of {course.title} (group {course.instructors_group}) may publish it."
            )
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError:
            raise web.HTTPError(400, 'Send JSON: {"folder": "<folder in your home>"}') from None
        folder = body.get("folder") if isinstance(body, dict) else None
        if not isinstance(folder, str):
            raise web.HTTPError(400, 'Send JSON: {"folder": "<folder in your home>"}')
        state = await user.get_auth_state() or {}
        try:
            instructor = Instructor(
                name=user.name,
                uid=int(state["uid_number"]),
                gid=int(state["gid_number"]),
                home=str(state["home_directory"]),
            )
        except (KeyError, TypeError, ValueError):
            raise web.HTTPError(409, "Log out and in again: the hub has no record of your home directory.") from None
        if instructor.uid < MIN_UID or instructor.gid < MIN_UID or not os.path.isabs(instructor.home):
            # The folder is read with the instructor's uid: never root or a system account.
            raise web.HTTPError(
                403, f"Refusing to publish as uid {instructor.uid}/gid {instructor.gid}: below {MIN_UID}."
            )
        try:
            result = await publish_folder(course, self.courses_dir, instructor, folder, self.publish_settings)
        except PublishError as err:
            raise web.HTTPError(400, str(err)) from None
        self.log.info("%s published %s from ~/%s: %s", user.name, slug, folder, result)
        self.finish({"course": slug, **result})
