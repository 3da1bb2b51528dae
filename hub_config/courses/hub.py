"""Courses → JupyterHub configuration (called from :func:`condorhub.traits.apply_site`)."""

from __future__ import annotations

from pathlib import Path

from condorhub.schema import SiteConfig

from .assignments_handlers import assignment_handlers
from .handlers import (
    PUBLISH_SCOPE,
    PUBLISH_SCOPE_DEFINITION,
    CoursePublishHandler,
    CourseTeachingHandler,
    course_environment,
    courses_of,
    publisher_role,
    server_token_scopes,
)
from .page import apply_course_page
from .publish import (
    PublishError,
    course_source,
    prepare_repository_dir,
    repository_path,
    service_account,
    trust_course_repositories,
)
from .rbac import course_roles

TEMPLATES = Path(__file__).parent / "templates"
PUBLISH_API_PATTERN = r"/api/condorhub/courses/([a-z0-9][a-z0-9-]{0,39})/publish"
# The courses the caller may publish to (the Lab's publish dialog asks through the user's server).
TEACHING_API_PATTERN = r"/api/condorhub/teaching"
# Spawner classes whose servers should receive the courses (each has its own `environment` config).
SPAWNER_SECTIONS = ("LoginNodeSpawner", "HTCondorSpawner")


def apply_courses(c, site: SiteConfig) -> None:
    courses = list(site.courses)
    courses_dir = site.hub.courses_dir

    # The home page lists a user's courses (a template var evaluated per user).
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    c.JupyterHub.template_vars = {"condorhub_courses": lambda user: courses_of(user, courses, courses_dir)}
    apply_course_page(c, site)  # GET /hub/courses/<slug>, and "last updated" on the home page
    if not courses:
        return

    c.JupyterHub.load_roles = [*c.JupyterHub.get("load_roles", []), *course_roles(courses)]
    publishers = publisher_role(courses)
    if publishers:
        # Publishing from the Lab: instructors hold the scope, and their servers' tokens get it too.
        c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), PUBLISH_SCOPE: PUBLISH_SCOPE_DEFINITION}
        c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, publishers]
        c.Spawner.server_token_scopes = server_token_scopes(c.Spawner.get("server_token_scopes", []))
    api_args = {"courses": courses, "courses_dir": courses_dir, "settings": site.course_publishing}
    c.JupyterHub.extra_handlers = [
        *c.JupyterHub.get("extra_handlers", []),
        (PUBLISH_API_PATTERN, CoursePublishHandler, api_args),
        (TEACHING_API_PATTERN, CourseTeachingHandler, api_args),
        *assignment_handlers(courses, site.course_publishing, site.hub.state_dir),  # collect / return / fetch
    ]
    env_value = course_environment(courses, courses_dir)
    for section in SPAWNER_SECTIONS:
        environment = dict(c[section].get("environment", {}))
        environment["CONDORHUB_COURSES"] = env_value
        c[section].environment = environment

    courses_dir.mkdir(parents=True, exist_ok=True)
    courses_dir.chmod(0o755)
    published = [course for course in courses if not course.repository]
    if published:
        # Fail at start, not at the first publish: the service account writes every published course.
        try:
            account = service_account(site.course_publishing)
            for course in published:
                prepare_repository_dir(repository_path(courses_dir, course), account)
        except PublishError as err:
            raise SystemExit(f"condorhub: {err}") from None
    local = [
        course_source(courses_dir, course) for course in courses if "://" not in course_source(courses_dir, course)
    ]
    trust_course_repositories(local)
