"""End to end: instructors publish course material, students get it at their next spawn, RBAC per course.

Real hub + proxy + OpenLDAP + login-node servers; the merge is nbgitpuller's, running in the student's server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import scratch_dir
from hub_harness import Hub, HubClient, demo_site

pytestmark = [pytest.mark.e2e, pytest.mark.ldap]

CAROL_UID, BOB_UID, DAVE_UID, GID = 10003, 10002, 10004, 10000

COURSES = [
    # alice (students) takes it, carol (instructors) teaches it
    {"slug": "dl-intro", "title": "Deep learning for physicists", "students_group": "students", "instructors_group": "instructors"},
    # bob (researchers) takes it, dave (guests) teaches it: a second course with other people
    {"slug": "thesis-lab", "title": "Thesis lab", "students_group": "researchers", "instructors_group": "guests"},
]


def write_as(path: Path, text: str, uid: int) -> None:
    """Create a file (and its folders) owned by ``uid``, as that user's own editor would."""
    home = path
    while home.parent.name != "home":
        home = home.parent
    for folder in [home, *reversed(path.relative_to(home).parents[:-1])]:
        target = folder if folder == home else home / folder
        target.mkdir(exist_ok=True)
        os.chown(target, uid, GID)
    path.write_text(text)
    os.chown(path, uid, GID)


@pytest.fixture(scope="module")
def hub(slapd):
    work = scratch_dir("condorhub-courses-hub-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["hub"]["courses_dir"] = str(work / "courses")
    site["courses"] = COURSES
    hub = Hub(work, site).start()
    yield hub
    print(hub.log_tail(80))  # shown by pytest when a test of this module failed
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


def publish(client: HubClient, slug: str, folder: str):
    return client.api("POST", f"/condorhub/courses/{slug}/publish", data=json.dumps({"folder": folder}))


def restart_server(client: HubClient, user: str) -> None:
    client.api("DELETE", f"/users/{user}/server", timeout=60)
    client.http.get(f"{client.url}/hub/spawn", timeout=60)  # one profile: starts without a form
    client.wait_for_server(user)


def can_open(client: HubClient, owner: str) -> int:
    """What a user gets opening ``owner``'s Lab: 200 (the Lab) or the hub's refusal status.

    For someone else's server JupyterHub first asks "Authorize access?"; the test clicks it as the
    instructor would (the form's hidden fields, posted back).
    """
    page = client.http.get(f"{client.url}/user/{owner}/lab", timeout=30)
    if page.status_code == 200 and "/hub/api/oauth2/authorize" in page.url:
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        scopes = re.findall(r'<input type="hidden" name="scopes" value="([^"]*)"', page.text)
        page = client.http.post(page.url, data={**fields, "scopes": scopes}, timeout=30)
    if page.status_code == 200 and not page.url.startswith(f"{client.url}/user/{owner}/"):
        raise AssertionError(f"ended on {page.url} instead of {owner}'s Lab")
    return page.status_code


def test_published_course_reaches_students_and_updates_keep_their_edits(hub, ldap_home_base):
    carol_course = ldap_home_base / "carol" / "teaching" / "dl"
    write_as(carol_course / "README.md", "Week 1: read this.\n", CAROL_UID)
    write_as(carol_course / "lesson1.py", "print('hello')\n", CAROL_UID)

    carol = hub.client()
    carol.login("carol", "carol-pw", follow=False)
    first = publish(carol, "dl-intro", "teaching/dl")
    assert first.status_code == 200, first.text
    assert first.json()["changed"] is True and first.json()["files"] == 2

    alice = hub.client()
    alice.login("alice", "alice-pw")  # the login starts her server, which pulls the course
    alice.wait_for_server("alice")
    course = ldap_home_base / "alice" / "courses" / "dl-intro"
    assert (course / "README.md").read_text() == "Week 1: read this.\n"
    assert os.stat(course / "README.md").st_uid == 10001

    # alice edits the README in her Lab; carol then changes it too and adds a lesson.
    xsrf = alice.http.cookies.get("_xsrf", path="/user/alice/") or alice.http.cookies.get("_xsrf")
    put = alice.http.put(
        f"{hub.url}/user/alice/api/contents/courses/dl-intro/README.md",
        json={"type": "file", "format": "text", "content": "My notes on week 1.\n"},
        headers={"X-XSRFToken": xsrf},
        timeout=15,
    )
    assert put.status_code == 200, put.text
    write_as(carol_course / "README.md", "Week 1 and 2: read this.\n", CAROL_UID)
    write_as(carol_course / "lesson2.py", "print('week 2')\n", CAROL_UID)
    second = publish(carol, "dl-intro", "teaching/dl")
    assert second.status_code == 200 and second.json()["changed"] is True

    restart_server(alice, "alice")
    assert (course / "README.md").read_text() == "My notes on week 1.\n"  # her edit survives
    assert (course / "lesson2.py").read_text() == "print('week 2')\n"  # the new lesson arrives
    assert (course / "lesson1.py").exists()


def test_home_page_lists_each_users_courses(hub):
    alice = hub.client()
    alice.login("alice", "alice-pw", follow=False)
    home = alice.http.get(f"{hub.url}/hub/home", timeout=15).text
    assert "Your courses" in home and "Deep learning for physicists" in home and "Thesis lab" not in home
    assert "git-pull?repo=" in home  # the link an instructor can share

    carol = hub.client()
    carol.login("carol", "carol-pw", follow=False)
    page = carol.http.get(f"{hub.url}/hub/home", timeout=15).text
    assert "instructor" in page and "/user/alice/" in page, page[page.find("<body"):]  # her students, linked

    bob = hub.client()
    bob.login("bob", "bob-pw", follow=False)
    assert "Deep learning for physicists" not in bob.http.get(f"{hub.url}/hub/home", timeout=15).text


def test_instructors_open_only_their_own_students_servers(hub):
    people = {}
    for name in ("alice", "bob", "carol", "dave"):
        people[name] = hub.client()
        people[name].login(name, f"{name}-pw")
    people["alice"].wait_for_server("alice")
    people["bob"].wait_for_server("bob")

    assert can_open(people["carol"], "alice") == 200  # her student
    assert can_open(people["carol"], "bob") == 403  # another course's student
    assert can_open(people["dave"], "bob") == 200
    assert can_open(people["dave"], "alice") == 403
    assert can_open(people["alice"], "bob") == 403  # students never open each other's servers
    assert can_open(people["bob"], "alice") == 403


def test_publishing_is_for_that_courses_instructors_and_inside_their_home(hub, ldap_home_base):
    alice = hub.client()
    alice.login("alice", "alice-pw", follow=False)
    refused = publish(alice, "dl-intro", "courses/dl-intro")
    assert refused.status_code == 403 and "Only instructors of Deep learning for physicists" in refused.text

    dave = hub.client()
    dave.login("dave", "dave-pw", follow=False)
    assert publish(dave, "dl-intro", "x").status_code == 403  # teaches thesis-lab, not this one

    carol = hub.client()
    carol.login("carol", "carol-pw", follow=False)
    outside = publish(carol, "dl-intro", "../alice")
    assert outside.status_code == 400 and "without `..`" in outside.text
    missing = publish(carol, "dl-intro", "no/such/folder")
    assert missing.status_code == 400 and "cannot read no/such/folder" in missing.text
    assert publish(carol, "no-such-course", "teaching/dl").status_code == 404
