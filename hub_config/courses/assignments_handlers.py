"""The hub API of assignments (see :mod:`.assignments` for the design and its rules).

    GET  /hub/api/condorhub/courses/<slug>/assignments                  instructors: all; students: their returned work
    POST /hub/api/condorhub/courses/<slug>/assignments/collect          {"folder": "exercise-3"}        instructors
    POST /hub/api/condorhub/courses/<slug>/assignments/return           {"folder": "exercise-3", "feedback": "feedback"}
    POST /hub/api/condorhub/courses/<slug>/assignments/fetch-feedback   {"folder": "exercise-3"}        the student

Inside the hub (``JupyterHub.extra_handlers``) like the publish endpoint: it needs the users' encrypted
auth state (uid, gid, home) and the hub's own session and XSRF checks. Who teaches and who takes a course
is the JupyterHub groups, which mirror LDAP.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from condorhub.schema import CoursePublishSettings, CourseSettings

from .assignments import Account, AssignmentError, Records, collect, fetch_feedback, listing, mark_returned
from .handlers import MIN_UID

API_PATTERN = r"/api/condorhub/courses/([a-z0-9][a-z0-9-]{0,39})/assignments(?:/(collect|return|fetch-feedback))?"


def account_from_state(name: str, state: dict | None) -> Account | None:
    """The account a reader or writer may run as, from a user's auth state; None when there is none usable.

    Never root or a system account (as :data:`.handlers.MIN_UID`), always an absolute home.
    """
    try:
        account = Account(
            name=name,
            uid=int(state["uid_number"]),  # type: ignore[index]
            gid=int(state["gid_number"]),  # type: ignore[index]
            home=str(state["home_directory"]),  # type: ignore[index]
        )
    except (KeyError, TypeError, ValueError):
        return None
    if account.uid < MIN_UID or account.gid < MIN_UID or not os.path.isabs(account.home):
        return None
    return account


def _groups(user) -> set[str]:
    return {group.name for group in getattr(user, "groups", [])}


class CourseAssignmentsHandler(APIHandler):
    def initialize(self, courses: Sequence[CourseSettings], settings: CoursePublishSettings, state_dir: Path):
        self.courses = {c.slug: c for c in courses}
        self.publish_settings = settings
        self.records = Records(state_dir)

    def _course(self, slug: str) -> CourseSettings:
        course = self.courses.get(slug)
        if course is None:
            raise web.HTTPError(404, f"There is no course {slug!r}.")
        return course

    def _require_instructor(self, course: CourseSettings, what: str) -> None:
        if course.instructors_group not in _groups(self.current_user):
            raise web.HTTPError(
                403,
                f"Only instructors of {course.title} (group {course.instructors_group}) may {what} its assignments.",
            )

    def _body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPError(400, 'Send JSON, e.g. {"folder": "exercise-3"}')
        return body

    async def _own_account(self) -> Account:
        user = self.current_user
        account = account_from_state(user.name, await user.get_auth_state())
        if account is None:
            raise web.HTTPError(409, "Log out and in again: the hub has no usable record of your home directory.")
        return account

    @web.authenticated
    async def get(self, slug: str, action: str | None):
        if action:
            raise web.HTTPError(405, f"{action} is a POST")
        course = self._course(slug)
        groups = _groups(self.current_user)
        if course.instructors_group in groups:
            self.finish(listing(course, self.records))
        elif course.students_group in groups:
            self.finish(listing(course, self.records, student=self.current_user.name))
        else:
            raise web.HTTPError(403, f"You neither teach nor take {course.title}.")

    @web.authenticated
    async def post(self, slug: str, action: str | None):
        course = self._course(slug)
        body = self._body()
        try:
            if action == "collect":
                self._require_instructor(course, "collect")
                result = await collect(
                    course,
                    await self._own_account(),
                    await self._students(course),
                    body.get("folder"),
                    self.publish_settings,
                    self.records,
                )
            elif action == "return":
                self._require_instructor(course, "return")
                result = mark_returned(
                    course, await self._own_account(), body.get("folder"), body.get("feedback"), self.records
                )
            elif action == "fetch-feedback":
                result = await self._fetch(course, body)
            else:
                raise web.HTTPError(404, "POST to …/assignments/collect, …/return or …/fetch-feedback")
        except AssignmentError as err:
            raise web.HTTPError(err.status, str(err)) from None
        self.log.info("%s %s %s in %s", self.current_user.name, action, body.get("folder"), slug)
        self.finish(result)

    async def _students(self, course: CourseSettings) -> dict[str, Account | None]:
        """Every member of the course's students group, with their account (None: never logged in)."""
        group = orm.Group.find(self.db, course.students_group)
        members = [u for u in (group.users if group else []) if u.name != self.current_user.name]
        students: dict[str, Account | None] = {}
        for orm_user in members:
            user = self._user_from_orm(orm_user)
            students[user.name] = account_from_state(user.name, await user.get_auth_state())
        return students

    async def _fetch(self, course: CourseSettings, body: dict) -> dict:
        user = self.current_user
        if course.students_group not in _groups(user):
            raise web.HTTPError(403, f"Only students of {course.title} fetch feedback from it.")
        asked = body.get("student", user.name)
        if asked != user.name:
            # The fetch always copies the caller's own feedback; naming someone else is refused outright.
            raise web.HTTPError(403, "You can fetch only your own feedback.")
        student = await self._own_account()

        async def instructor_of(name: str) -> Account | None:
            instructor = self.find_user(name)
            if instructor is None or course.instructors_group not in _groups(instructor):
                return None
            return account_from_state(instructor.name, await instructor.get_auth_state())

        return await fetch_feedback(
            course, student, body.get("folder"), instructor_of, self.publish_settings, self.records
        )


def assignment_handlers(courses: Sequence[CourseSettings], settings: CoursePublishSettings, state_dir: Path) -> list:
    """The ``JupyterHub.extra_handlers`` entry of the assignments API."""
    return [(API_PATTERN, CourseAssignmentsHandler, {"courses": courses, "settings": settings, "state_dir": state_dir})]
