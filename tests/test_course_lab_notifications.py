"""In a real browser, through JupyterHub: the Lab shows the background course pulls as notifications
(issue 10, item 7), and the Lab opens although one course's repository never answers.

alice takes three courses distributed from git repositories: one that pulls at once, one whose git://
server accepts and never answers (still pulling while she works), one whose server refuses connections
(failed). Screenshot in test-artifacts/course-notifications.png.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from tests.support.browser import chromium_page, login_to_lab, screenshot
from tests.support.courses import SilentGitDaemon
from tests.support.hub import Hub, demo_site
from tests.support.ports import free_port
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ldap]

GIT_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}


@pytest.fixture(scope="module")
def hub(slapd):
    work = scratch_dir("condorhub-course-lab-")
    lesson = work / "lesson"
    lesson.mkdir()
    (lesson / "intro.md").write_text("Hello\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=lesson, env=GIT_ENV, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(lesson), str(work / "lesson.git")], env=GIT_ENV, check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(work / "lesson.git")], check=True)
    daemon = SilentGitDaemon()
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["hub"]["courses_dir"] = str(work / "courses")
    common = {"students_group": "students", "instructors_group": "instructors"}
    site["courses"] = [
        {"slug": "lesson", "title": "Lesson", "repository": str(work / "lesson.git"), **common},
        {"slug": "mirrored", "title": "Mirrored", "repository": f"git://127.0.0.1:{daemon.port}/m.git", **common},
        {"slug": "broken", "title": "Broken", "repository": f"git://127.0.0.1:{free_port()}/b.git", **common},  # nothing listens there
    ]
    hub = Hub(work, site).start()
    yield hub
    hub.stop()
    hub.kill_servers()
    daemon.close()
    shutil.rmtree(work, ignore_errors=True)


def test_the_lab_opens_and_shows_course_pulls_as_notifications(hub, ldap_home_base):
    with chromium_page() as page:
        started = time.monotonic()
        login_to_lab(page, hub.url, "alice")
        took = time.monotonic() - started
        page.get_by_text("Course mirrored: bringing ~/courses/mirrored up to date").first.wait_for(timeout=30_000)
        page.get_by_text("Course broken could not be updated: fatal: unable to connect").first.wait_for(timeout=30_000)
        screenshot(page, "course-notifications")
        assert (ldap_home_base / "alice" / "courses" / "lesson" / "intro.md").read_text() == "Hello\n"
    assert took < 60, took  # the hub's http_timeout: a hanging course no longer fails the start
    print(f"login to an open Lab with a hanging course: {took:.1f} s")
