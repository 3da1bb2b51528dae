"""Hub side of courses: the publish endpoints, the home page's course list, the servers' course list.

The endpoints live inside the hub (``JupyterHub.extra_handlers``) rather than in a separate service
because they need the caller's encrypted auth state (their uid and home) and JupyterHub's own session and
XSRF checks.

Who may publish: the custom scope :data:`PUBLISH_SCOPE`, held by the instructors' groups of hub-managed
courses (:func:`publisher_role`) and requested for every server's own API token
(``Spawner.server_token_scopes``; JupyterHub gives a token only the scopes its owner holds, so a student's
server token never has it). That is what lets the Lab's *Publish to course…* work: the Lab's page cannot
send the hub's cookie (path /hub/), so the instructor's server forwards the request with its
``$JUPYTERHUB_API_TOKEN`` (condorhub.lab.courses.publish). A token always acts as its owner: any token
publishes only as the user it belongs to, and only into a course whose instructors group that user is in.
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

PUBLISH_SCOPE = "custom:condorhub-courses:publish"
PUBLISH_SCOPE_DEFINITION = {
    "description": "Publish a folder of your home as the next version of a course you teach.",
}
PUBLISHER_ROLE = "condorhub-course-publishers"


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


def publisher_role(courses: Sequence[CourseSettings]) -> dict | None:
    """The role holding :data:`PUBLISH_SCOPE`: the instructors' groups of the courses the hub keeps.

    The scope says "may use the publish endpoints at all"; which course a user may publish to is still
    their instructors group, checked per request (a role cannot filter a custom scope by course).
    """
    groups = sorted({c.instructors_group for c in courses if not c.repository})
    if not groups:
        return None
    return {
        "name": PUBLISHER_ROLE,
        "description": "Instructors of courses the hub keeps: publish a folder of their home as a course version",
        "scopes": [PUBLISH_SCOPE],
        "groups": groups,
    }


def server_token_scopes(current: Sequence[str]) -> list[str]:
    """``Spawner.server_token_scopes`` plus :data:`PUBLISH_SCOPE` (only owners who hold it get it)."""
    # Empty means JupyterHub's `server` role; keep what that gives a server token.
    base = list(current) or ["users:activity!user", "access:servers!server"]
    return base if PUBLISH_SCOPE in base else [*base, PUBLISH_SCOPE]


class _CourseAPIHandler(APIHandler):
    def initialize(self, courses: Sequence[CourseSettings], courses_dir: Path, settings: CoursePublishSettings):
        self.courses = {c.slug: c for c in courses}
        self.courses_dir = courses_dir
        self.publish_settings = settings

    def caller(self):
        """The user making the request; 403 (not tornado's redirect to the login page: an API) without one."""
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Missing or invalid credentials: log in, or send a valid token.")
        return user

    def may_publish(self) -> bool:
        return self.has_scope(PUBLISH_SCOPE)

    def limits(self) -> dict:
        settings = self.publish_settings
        return {"max_size": int(settings.max_size), "max_files": settings.max_files, "timeout": settings.timeout}


class CourseTeachingHandler(_CourseAPIHandler):
    """GET /hub/api/condorhub/courses/teaching → the courses the caller may publish to, and the limits.

    For the Lab's *Publish to course…* dialog (through the user's server, with its token). A caller
    without :data:`PUBLISH_SCOPE` (a student, a token without the scope) gets an empty list, not an
    error: the Lab asks at every start to decide whether to show the menu item.
    """

    async def get(self):
        user = self.caller()
        groups = _group_names(user)
        mine = []
        if self.may_publish():
            for course in self.courses.values():
                if course.repository or course.instructors_group not in groups:
                    continue
                mine.append({"slug": course.slug, "title": course.title, "branch": course.branch})
        self.finish({"user": user.name, "courses": mine, "limits": self.limits()})


class CoursePublishHandler(_CourseAPIHandler):
    """POST /hub/api/condorhub/courses/<slug>/publish  {"folder": "<folder in your home>"}

    Only an instructor of that course may publish, with the hub's cookie or a token that has
    :data:`PUBLISH_SCOPE`; the reply says what was published.
    """

    async def post(self, slug: str):
        user = self.caller()
        course = self.courses.get(slug)
        if course is None:
            raise web.HTTPError(404, f"There is no course {slug!r}.")
        if course.instructors_group not in _group_names(user):
            raise web.HTTPError(
                403, f"Only instructors of {course.title} (group {course.instructors_group}) may publish it."
            )
        if not self.may_publish():
            # An instructor, but with a token made for something else (e.g. one limited to reading).
            raise web.HTTPError(
                403,
                f"This token may not publish courses: it lacks the scope {PUBLISH_SCOPE}; publish from the Lab "
                "or the hub's page, or use a token with that scope.",
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
