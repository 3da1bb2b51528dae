"""The course page on the hub (``GET /hub/courses/<slug>``): a course's students and their servers, and its versions.

For the course's instructors and the hub's admins; anyone else gets a 403 page saying who may see it.
Everything on it comes from what the hub already knows: each student's spawner (profile, HTCondor job and
node, start time; no HTCondor query per page load) and the hub's database (activity), plus the course's
history read by git as the course service account (:mod:`.history`). Opening a student's server is a plain
link to ``/user/<name>/``, which JupyterHub's RBAC allows for the course's students only
(:mod:`.rbac`); stopping one is the hub's own REST API called from the page, as the admin page does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from jupyterhub import orm
from jupyterhub.handlers.base import BaseHandler
from tornado import web

from condorhub.schema import CourseSettings, SiteConfig

from .history import CourseHistory, History
from .publish import PublishError, ServiceAccount, service_account

LOGIN_NODE = "login node"
# Any slug-like name: an unknown course is the page's own 404 ("there is no course ..."), not the hub's.
COURSE_PAGE_PATTERN = r"/courses/([a-z0-9][a-z0-9-]{0,39})/?"


@dataclass(frozen=True)
class Moment:
    """A point in time as the page shows it: ISO for machines (and tests), words for people."""

    iso: str
    stamp: str  # 2026-12-01 14:35 UTC
    ago: str  # just now, 5 min ago, 2 h 10 min ago, 3 days ago

    @property
    def text(self) -> str:
        return f"{self.stamp} ({self.ago})"


def moment(value: datetime | float | None, now: datetime | None = None) -> Moment | None:
    """``value`` (an aware or naive-UTC datetime, as JupyterHub's database keeps them, or epoch seconds)."""
    if not value:
        return None
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - value).total_seconds()))
    if seconds < 60:
        ago = "just now"
    elif seconds < 3600:
        ago = f"{seconds // 60} min ago"
    elif seconds < 86400:
        ago = f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    else:
        ago = f"{seconds // 86400} days ago"
    return Moment(iso=value.isoformat(timespec="seconds"), stamp=f"{value:%Y-%m-%d %H:%M} UTC", ago=ago)


@dataclass(frozen=True)
class StudentServer:
    """One row of the course page: a student and their default server."""

    name: str
    state: str  # running | pending | stopping | stopped: what the page's CSS and tests key on
    state_text: str  # the same in words, with the HTCondor job where there is one
    profile: str = ""
    node: str = ""
    job_id: str = ""
    since: Moment | None = None
    last_activity: Moment | None = None
    note: str = ""  # why the last server stopped, when the hub knows


def server_of(user) -> StudentServer:
    """What ``user``'s default spawner knows about its server (a JupyterHub ``User``)."""
    # dict.get, not user.spawner: that would create a spawner (and a database row) for a user who never
    # started one; a spawner that ran since the hub started is in the dict.
    spawner = user.spawners.get("")
    orm_spawner = user.orm_user.orm_spawners.get("")
    activity = moment((orm_spawner and orm_spawner.last_activity) or user.orm_user.last_activity)
    if spawner is None or not spawner.active:
        note = getattr(spawner, "last_stop_reason", "") if spawner is not None else ""
        return StudentServer(user.name, "stopped", "stopped", last_activity=activity, note=note)

    profile = getattr(spawner, "profile", None)
    child = getattr(spawner, "child_spawner", None)
    kind = getattr(profile, "kind", "")
    job_id = str(getattr(child, "job_id", "") or "") if kind == "condor" else ""
    node = LOGIN_NODE if kind == "login_node" else str(getattr(child, "node", "") or "")
    run_started = getattr(child, "run_started", 0) if kind == "condor" else 0
    submitted_at = getattr(child, "submitted_at", 0) if kind == "condor" else 0
    started = moment(run_started or (orm_spawner.started if orm_spawner else None))
    base = StudentServer(
        user.name,
        "pending",
        "starting",
        profile=getattr(profile, "display_name", "") or "",
        node=node,
        job_id=job_id,
        since=started,
        last_activity=activity,
    )
    if spawner.pending == "stop":
        return replace(base, state="stopping", state_text="stopping")
    if spawner.ready:
        return replace(base, state="running", state_text="running")
    if job_id and not getattr(child, "node", ""):
        return replace(base, state_text=f"queued in HTCondor (job {job_id})", since=moment(submitted_at) or started)
    return replace(base, state_text=f"starting on {node}" if node else "starting")


def _group_names(user) -> set[str]:
    return {group.name for group in getattr(user, "groups", [])}


def may_see(user, course: CourseSettings) -> bool:
    """The course page is for the course's instructors and the hub's admins."""
    return bool(getattr(user, "admin", False)) or course.instructors_group in _group_names(user)


def students_of(db, course: CourseSettings) -> list:
    """The hub's users in the course's students group (those who logged in at least once), by name."""
    group = orm.Group.find(db, course.students_group)
    return sorted(group.users, key=lambda u: u.name) if group else []


class CoursePageHandler(BaseHandler):
    """GET /hub/courses/<slug>: the course page, rendered with the hub's own templates (course.html)."""

    def initialize(self, courses: Sequence[CourseSettings], history: CourseHistory):
        self.courses = {c.slug: c for c in courses}
        self.course_history = history

    @web.authenticated
    async def get(self, slug: str):
        course = self.courses.get(slug)
        if course is None:
            raise web.HTTPError(404, f"There is no course {slug!r} on this hub; your courses are on your home page.")
        user = self.current_user
        if not may_see(user, course):
            raise web.HTTPError(
                403,
                f"The course page of {course.title} is for its instructors (LDAP group {course.instructors_group}) "
                "and the hub's admins. If you teach it, ask your admins to add you to that group.",
            )
        students = [server_of(self.users[orm_user]) for orm_user in students_of(self.db, course)]
        history = await self.course_history.history(course)
        html = await self.render_template(
            "course.html",
            course=course,
            students=students,
            history=history,
            versions=[(version, moment(version.date)) for version in history.versions],
        )
        self.finish(html)


def latest_version_lookup(history: CourseHistory, courses: Sequence[CourseSettings]):
    """For ``JupyterHub.template_vars``: ``condorhub_course_history(slug)`` in a template, awaited by Jinja.

    The hub renders its pages with Jinja's async mode, which awaits what a template's call returns, so the
    home page can ask for a course's latest version without blocking the hub on git.
    """
    by_slug = {c.slug: c for c in courses}

    async def course_history(slug: str) -> dict:
        """``state``: published (``when``), none (not yet), external (``source``) or unknown (git failed)."""
        course = by_slug.get(slug)
        if course is None:
            return {"state": "unknown"}
        if course.repository:
            return {"state": "external", "source": course.repository}
        found: History = await history.history(course)
        if found.latest:
            return {"state": "published", "when": moment(found.latest.date), "version": found.latest}
        return {"state": "unknown" if found.error else "none"}

    return lambda user: course_history


def history_account(site: SiteConfig) -> ServiceAccount | None:
    """The account that reads the hub-managed courses' history; None without such courses, or when the
    account is missing (:func:`condorhub.courses.hub.apply_courses` then stops the hub saying how to fix it)."""
    if all(course.repository for course in site.courses):
        return None
    try:
        return service_account(site.course_publishing)
    except PublishError:
        return None


def apply_course_page(c, site: SiteConfig) -> None:
    """The course page and the home page's "last updated" (called from :func:`.hub.apply_courses`)."""
    courses = list(site.courses)
    history = CourseHistory(site.hub.courses_dir, history_account(site))
    c.JupyterHub.template_vars = {
        **c.JupyterHub.get("template_vars", {}),
        "condorhub_course_history": latest_version_lookup(history, courses),
    }
    if courses:
        c.JupyterHub.extra_handlers = [
            *c.JupyterHub.get("extra_handlers", []),
            (COURSE_PAGE_PATTERN, CoursePageHandler, {"courses": courses, "history": history}),
        ]
