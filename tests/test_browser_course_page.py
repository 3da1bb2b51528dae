"""The course page (GET /hub/courses/<slug>) in a real browser: carol sees her students' servers, opens and stops
them, and the course's published versions; nobody else sees the page, and she reaches no other course's servers.

Real hub + proxy + OpenLDAP + login-node servers, Chromium through Playwright; publishes are real (reader as
carol, writer as the course service account).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.browser import ARTIFACTS, chromium_page
from tests.support.courses import ensure_course_account, git_out
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ldap]

CAROL_UID, GID = 10003, 10000
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
COURSES = [
    # alice (students) takes it, carol (instructors) teaches it
    {"slug": "dl-intro", "title": "Deep learning for physicists", "students_group": "students", "instructors_group": "instructors"},
    # bob (researchers) takes it, dave (guests) teaches it; nothing is ever published to it here
    {"slug": "thesis-lab", "title": "Thesis lab", "students_group": "researchers", "instructors_group": "guests"},
    # carol also teaches a course kept in a git repository of its own (dave takes it; his server never starts)
    {"slug": "mirrored", "title": "Mirrored lectures", "students_group": "guests", "instructors_group": "instructors",
     "repository": "https://git.example.invalid/lectures.git"},
]


@pytest.fixture(scope="module")
def hub(slapd):
    work = scratch_dir("condorhub-course-page-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["hub"]["courses_dir"] = str(work / "courses")
    site["courses"] = COURSES
    ensure_course_account()
    hub = Hub(work, site).start()
    hub.courses_dir = work / "courses"
    yield hub
    print(hub.log_tail(80))  # shown by pytest when a test of this module failed
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


def as_carol(home_base: Path, rel: str, text: str) -> None:
    """Write ``~carol/<rel>`` (and its folders) owned by carol, as her editor would."""
    path = home_base / "carol" / rel
    folder = home_base / "carol"
    for part in ("", *Path(rel).parent.parts):
        folder = folder / part
        folder.mkdir(exist_ok=True)
        os.chown(folder, CAROL_UID, GID)
    path.write_text(text)
    os.chown(path, CAROL_UID, GID)


def login(hub: Hub, name: str) -> HubClient:
    client = hub.client()
    assert client.login(name, f"{name}-pw", follow=False).status_code in (200, 302)
    return client


def publish(carol: HubClient, folder: str) -> dict:
    reply = carol.api("POST", "/condorhub/courses/dl-intro/publish", data=json.dumps({"folder": folder}), timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def start_server(client: HubClient, name: str) -> None:
    reply = client.api("POST", f"/users/{name}/server", timeout=60)
    assert reply.status_code in (201, 202), reply.text
    client.wait_for_server(name)


def server_of(client: HubClient, name: str) -> dict | None:
    reply = client.api("GET", f"/users/{name}")
    assert reply.status_code == 200, reply.text
    return reply.json()["servers"].get("")


@pytest.fixture(scope="module")
def first_version(hub, ldap_home_base) -> str:
    """carol's first publish of ~/teaching/dl (two files); the commit it made."""
    as_carol(ldap_home_base, "teaching/dl/README.md", "Week 1: read this.\n")
    as_carol(ldap_home_base, "teaching/dl/lesson1.py", "print('hello')\n")
    result = publish(login(hub, "carol"), "teaching/dl")
    assert result["changed"] is True and result["files"] == 2
    return result["commit"]


def test_carol_sees_her_students_server_opens_it_and_stops_it(hub, ldap_home_base, first_version):
    alice = login(hub, "alice")
    start_server(alice, "alice")
    # A second version, published in this test: one file changed.
    as_carol(ldap_home_base, "teaching/dl/README.md", "Weeks 1 and 2: read this.\n")
    carol_api = login(hub, "carol")
    second = publish(carol_api, "teaching/dl")
    assert second["changed"] is True and second["commit"] != first_version

    with chromium_page() as page:
        page.goto(f"{hub.url}/hub/login?next=/hub/courses/dl-intro")
        page.fill("input[name=username]", "carol")
        page.fill("input[name=password]", "carol-pw")
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url(f"{hub.url}/hub/courses/dl-intro", timeout=30_000)

        row = page.locator("tr.condorhub-student[data-user=alice]")
        assert row.get_attribute("data-state") == "running"
        cells = row.locator("td").all_inner_texts()
        assert cells[1].strip() == "running" and cells[2] == "Login node (no GPU)" and cells[3] == "login node", cells
        assert "UTC" in cells[4] and "UTC" in cells[5], cells  # since when, last activity
        # Only the course's students: bob takes another course, carol and dave teach.
        listed = page.locator("tr.condorhub-student").evaluate_all("rows => rows.map(r => r.dataset.user)")
        assert listed == ["alice"], listed

        versions = page.locator("tr.condorhub-version")
        assert versions.evaluate_all("rows => rows.map(r => r.dataset.commit)") == [second["commit"], first_version]
        newest = versions.first.locator("td").all_inner_texts()
        assert second["commit"].startswith(newest[1].split()[0]) and "current" in newest[1], newest
        assert newest[2] == "carol" and newest[3] == "Published by carol from ~/teaching/dl" and newest[4] == "1"
        assert versions.nth(1).locator("td").all_inner_texts()[4] == "2"  # the first version added two files

        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / "course-page.png"), full_page=True)

        # Open: JupyterHub asks carol once to authorize access to alice's server, then shows alice's Lab.
        row.locator("a.condorhub-open").click()
        page.wait_for_url(re.compile(r".*/(hub/api/oauth2/authorize|user/alice/).*"), timeout=60_000)
        if "/oauth2/authorize" in page.url:
            page.click("button[type=submit]")
        page.wait_for_url(f"{hub.url}/user/alice/lab**", timeout=60_000)
        page.wait_for_selector(".jp-LabShell", timeout=90_000)
        # carol really is inside alice's server: its contents API (with the Lab's XSRF cookie) lists alice's home.
        listing = page.evaluate(
            """async () => {
                const xsrf = document.cookie.match(/_xsrf=([^;]+)/)[1];
                const reply = await fetch('/user/alice/api/contents', {headers: {'X-XSRFToken': xsrf}});
                return {status: reply.status, names: (await reply.json()).content?.map((item) => item.name)};
            }"""
        )
        assert listing["status"] == 200 and "courses" in listing["names"], listing

        # Stop, after the page's confirmation.
        page.goto(f"{hub.url}/hub/courses/dl-intro")
        asked = []
        page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.locator("tr.condorhub-student[data-user=alice] button.condorhub-stop").click()
        page.wait_for_selector("tr.condorhub-student[data-user=alice][data-state=stopped]", timeout=60_000)
        assert asked and "Stop alice's server?" in asked[0]
        page.screenshot(path=str(ARTIFACTS / "course-page-stopped.png"))
    assert server_of(alice, "alice") is None  # gone, as alice's own API view says
    page_text = carol_api.http.get(f"{hub.url}/hub/courses/dl-intro", timeout=15).text
    assert re.search(r'data-user="alice" data-state="stopped"', page_text)


def test_only_the_courses_instructors_see_its_page(hub):
    for name in ("alice", "dave", "bob"):  # its student, another course's instructor, another course's student
        page = login(hub, name).http.get(f"{hub.url}/hub/courses/dl-intro", timeout=15)
        assert page.status_code == 403, (name, page.status_code)
        assert "is for its instructors (LDAP group instructors)" in page.text
        assert "condorhub-students" not in page.text and "Published versions" not in page.text

    carol = login(hub, "carol")
    other = carol.http.get(f"{hub.url}/hub/courses/thesis-lab", timeout=15)
    assert other.status_code == 403 and "Thesis lab is for its instructors (LDAP group guests)" in other.text
    missing = carol.http.get(f"{hub.url}/hub/courses/no-such-course", timeout=15)
    assert missing.status_code == 404 and "There is no course &#39;no-such-course&#39;" in missing.text
    anonymous = hub.client().http.get(f"{hub.url}/hub/courses/dl-intro", timeout=15)
    assert anonymous.url.startswith(f"{hub.url}/hub/login")  # the login form first


def test_carol_cannot_open_stop_or_start_servers_beyond_her_course(hub):
    bob = login(hub, "bob")
    start_server(bob, "bob")
    carol = login(hub, "carol")

    # Opening bob's Lab (another course's student) is refused by the hub's RBAC.
    lab = carol.http.get(f"{hub.url}/user/bob/lab", timeout=30)
    if lab.status_code == 200 and "/hub/api/oauth2/authorize" in lab.url:
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', lab.text))
        lab = carol.http.post(lab.url, data=fields, timeout=30)
    assert lab.status_code == 403, (lab.status_code, lab.url)

    # The Stop button's API call, aimed at bob: refused, and his server keeps running.
    stop = carol.api("DELETE", "/users/bob/server", timeout=30)
    assert stop.status_code in (403, 404) and "No access" in stop.text, stop.text
    assert server_of(bob, "bob") is not None and server_of(bob, "bob")["ready"]

    # Stopping is all the course role adds: carol cannot start a server as her own student either.
    alice = login(hub, "alice")
    alice_before = server_of(alice, "alice")
    start = carol.api("POST", "/users/alice/server", timeout=30)
    assert start.status_code in (403, 404) and "No access" in start.text, start.text
    assert server_of(alice, "alice") == alice_before
    bob.api("DELETE", "/users/bob/server", timeout=60)


def test_home_page_links_the_course_page_and_says_when_the_material_changed(hub, first_version):
    repo = hub.courses_dir / "dl-intro.git"
    committed = datetime.fromtimestamp(int(git_out(repo, "log", "-1", "--format=%ct", "main")), UTC)

    alice = login(hub, "alice").http.get(f"{hub.url}/hub/home", timeout=15).text
    updated = re.search(r'<td class="condorhub-course-updated">(.*?)</td>', alice, re.S).group(1)
    assert "last updated" in updated and f'datetime="{committed.isoformat(timespec="seconds")}"' in updated, updated
    assert "/hub/courses/dl-intro" not in alice  # the course page is for instructors

    carol = login(hub, "carol").http.get(f"{hub.url}/hub/home", timeout=15).text
    assert 'href="/hub/courses/dl-intro"' in carol

    bob = login(hub, "bob").http.get(f"{hub.url}/hub/home", timeout=15).text
    assert "not published yet" in bob  # thesis-lab: nothing published

    # A course with a repository of its own says where its material comes from, on both pages.
    dave = login(hub, "dave").http.get(f"{hub.url}/hub/home", timeout=15).text
    assert "from <code>https://git.example.invalid/lectures.git</code>" in dave
    page = login(hub, "carol").http.get(f"{hub.url}/hub/courses/mirrored", timeout=15).text
    assert "The material comes from <code>https://git.example.invalid/lectures.git</code>" in page
    assert "condorhub-version" not in page


def test_a_publish_is_on_the_home_page_at_the_next_load(hub, ldap_home_base, first_version):
    """The home page's date is cached by the branch's ref files: a new publish shows at once."""
    alice = login(hub, "alice")
    before = alice.http.get(f"{hub.url}/hub/home", timeout=15).text
    time.sleep(1.1)  # commit times are in seconds
    as_carol(ldap_home_base, "teaching/dl/lesson3.py", "print('week 3')\n")
    commit = publish(login(hub, "carol"), "teaching/dl")["commit"]
    committed = datetime.fromtimestamp(int(git_out(hub.courses_dir / "dl-intro.git", "log", "-1", "--format=%ct", commit)), UTC)
    started = time.monotonic()
    after = alice.http.get(f"{hub.url}/hub/home", timeout=15).text
    first = time.monotonic() - started  # the one load that runs git (the branch moved)
    assert f'datetime="{committed.isoformat(timespec="seconds")}"' in after
    assert f'datetime="{committed.isoformat(timespec="seconds")}"' not in before

    loads = []
    for _ in range(20):
        started = time.monotonic()
        assert alice.http.get(f"{hub.url}/hub/home", timeout=15).status_code == 200
        loads.append(time.monotonic() - started)
    loads.sort()
    print(f"home page after a publish {first * 1000:.0f} ms, then median {loads[10] * 1000:.0f} ms (20 loads)")
