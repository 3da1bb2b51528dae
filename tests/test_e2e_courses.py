"""End to end: instructors publish course material, students get it at their next spawn, RBAC per course.

Real hub + proxy + OpenLDAP + login-node servers; the merge is nbgitpuller's, running in the student's server.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.support.courses import (
    SilentGitDaemon,
    crafted_stream,
    ensure_course_account,
    git_out,
    process_exists,
    start_takeover,
)
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir

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
def silent_daemon():
    """A git:// server that accepts and never answers: the repository of a course that hangs."""
    daemon = SilentGitDaemon()
    yield daemon
    daemon.close()


@pytest.fixture(scope="module")
def hub(slapd, silent_daemon):
    work = scratch_dir("condorhub-courses-hub-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["hub"]["courses_dir"] = str(work / "courses")
    # alice also takes a course mirrored from a repository that never answers.
    hanging = {"slug": "mirrored", "title": "Mirrored lectures", "students_group": "students",
               "instructors_group": "instructors", "repository": f"git://127.0.0.1:{silent_daemon.port}/lectures.git"}
    site["courses"] = [*COURSES, hanging]
    # Short, so the stalled-publish test does not wait long; a normal publish here takes well under 2 s.
    site["course_publishing"] = {"timeout": "10s"}
    ensure_course_account()
    hub = Hub(work, site).start()
    hub.courses_dir = work / "courses"
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


def course_states(client: HubClient, user: str) -> dict[str, dict]:
    """The server's course pulls (condorhub/api/courses), through the hub's proxy with the user's cookie."""
    reply = client.http.get(f"{client.url}/user/{user}/condorhub/api/courses", timeout=10)
    assert reply.status_code == 200, reply.text
    return {c["slug"]: c for c in reply.json()["courses"]}


def wait_for_course(client: HubClient, user: str, slug: str, timeout: float = 60) -> dict[str, dict]:
    """Courses are pulled in the background after the server answers: wait until ``slug`` is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = course_states(client, user)
        if states[slug]["state"] not in ("waiting", "pulling"):
            assert states[slug]["state"] == "done", states[slug]
            return states
        time.sleep(0.3)
    raise AssertionError(f"course {slug} still {states[slug]} after {timeout} s")


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
    # The session's homes are shared: another module's publish may have left files in this folder.
    shutil.rmtree(carol_course, ignore_errors=True)
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
    wait_for_course(alice, "alice", "dl-intro")
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
    wait_for_course(alice, "alice", "dl-intro")
    assert (course / "README.md").read_text() == "My notes on week 1.\n"  # her edit survives
    assert (course / "lesson2.py").read_text() == "print('week 2')\n"  # the new lesson arrives
    assert (course / "lesson1.py").exists()


def test_a_hanging_course_repository_does_not_delay_the_students_server(hub, silent_daemon):
    """The mirrored course's git:// server never answers. Pulls used to run before the server listened
    (up to 120 s a course, past the hub's 60 s http_timeout): the start failed. Now it is prompt and the
    state endpoint shows the hanging pull."""
    alice = hub.client()
    alice.login("alice", "alice-pw", follow=False)
    alice.api("DELETE", "/users/alice/server", timeout=60)
    started = time.monotonic()
    alice.http.get(f"{hub.url}/hub/spawn", timeout=60)
    alice.wait_for_server("alice", timeout=60)
    took = time.monotonic() - started
    states = course_states(alice, "alice")
    assert states["mirrored"]["state"] == "pulling", states
    assert took < 30, took
    assert silent_daemon.connections  # the pull really is waiting on the silent server
    print(f"server with a hanging course answered {took:.1f} s after the spawn request")


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


# --- publishing is safe against the instructor's own processes and folder (issue 10, item 1) ------------


def carol_folder(ldap_home_base: Path, name: str, files: dict[str, str]) -> Path:
    """``~carol/<name>`` with ``files`` (relative path → text), all owned by carol as her editor would make them."""
    for rel, text in files.items():
        write_as(ldap_home_base / "carol" / name / rel, text, CAROL_UID)
    return ldap_home_base / "carol" / name


def chown_tree(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, entry), uid, GID)
    os.lchown(root, uid, GID)


def writer_running(pid: int) -> bool:
    try:
        return b"condorhub.courses.writer" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def head_of(hub, slug: str = "dl-intro") -> str:
    return git_out(hub.courses_dir / f"{slug}.git", "rev-parse", "--verify", "-q", "refs/heads/main")


def published_files(hub, slug: str = "dl-intro") -> list[str]:
    return git_out(hub.courses_dir / f"{slug}.git", "ls-tree", "-r", "--name-only", "main").splitlines()


@pytest.fixture
def carol_client(hub):
    carol = hub.client()
    carol.login("carol", "carol-pw", follow=False)
    return carol


@pytest.fixture
def marker():
    """A file a planted hook or fsmonitor command would create (in world-writable /var/tmp, so any uid could)."""
    path = Path(f"/var/tmp/condorhub-courses-pwned-{os.getpid()}")
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def test_the_course_repository_belongs_to_the_service_account_not_root(hub, carol_client, ldap_home_base):
    carol_folder(ldap_home_base, "teaching/owner", {"notes.md": "x\n"})
    assert publish(carol_client, "dl-intro", "teaching/owner").status_code == 200
    account = ensure_course_account()
    repo = hub.courses_dir / "dl-intro.git"
    owners = {os.lstat(os.path.join(d, n)).st_uid for d, ds, fs in os.walk(repo) for n in [*ds, *fs]}
    assert owners == {account.pw_uid} and os.stat(repo).st_uid == account.pw_uid


def test_an_empty_folder_or_the_home_itself_is_refused(carol_client):
    for folder in ("", ".", "  ", "./"):
        reply = publish(carol_client, "dl-intro", folder)
        assert reply.status_code == 400 and "name the folder to publish" in reply.text, (folder, reply.text)
        assert "~/.ssh" in reply.text


def test_a_taken_over_reader_cannot_plant_git_hooks_or_config(hub, carol_client, ldap_home_base, marker):
    """The attack on the old design: a process of the instructor (same uid as the reader the hub starts)
    stops the reader and writes its own stream into the pipe: `.git/config` with an fsmonitor command and
    a pre-commit hook. The writer refuses the stream; nothing is published and nothing runs."""
    # Many files: listing them keeps the reader busy long enough for the take-over to catch it before
    # it writes its first byte (checked below), as a determined attacker would arrange.
    folder = carol_folder(ldap_home_base, "teaching/big", {"README.md": "big\n"})
    for i in range(6000):
        (folder / f"f{i:05d}.txt").write_text("x\n")
    chown_tree(folder, CAROL_UID)
    before = head_of(hub)
    script = f"#!/bin/sh\nid > {marker}\n".encode()
    stream = crafted_stream([
        ("lesson.py", b"print('hi')\n"),
        (".git/config", f"[core]\n\tfsmonitor = {marker}.sh\n\thooksPath = .git/hooks\n".encode()),
        (".git/hooks/pre-commit", script),
    ])
    Path(f"{marker}.sh").write_bytes(script)
    os.chmod(f"{marker}.sh", 0o755)
    report = Path(scratch_dir("condorhub-takeover-")) / "report.json"
    os.chmod(report.parent, 0o777)
    try:
        attacker = start_takeover(CAROL_UID, GID, stream, "inject", report)
        reply = publish(carol_client, "dl-intro", "teaching/big")
        assert attacker.wait(30) == 0, reply.text
        taken = json.loads(report.read_text())
    finally:
        Path(f"{marker}.sh").unlink(missing_ok=True)
        shutil.rmtree(report.parent, ignore_errors=True)
    assert taken["written_before"] == 0, taken  # the attacker's stream was all the writer saw
    assert reply.status_code == 400, reply.text
    assert "refused" in reply.text and "'.git/config': a '.git' component" in reply.text, reply.text
    assert "Nothing was published" in reply.text
    assert head_of(hub) == before
    assert not any(".git" in f.split("/") for f in published_files(hub))
    assert not marker.exists(), marker.read_text()


def test_git_metadata_inside_the_folder_is_not_published_and_never_runs(hub, carol_client, ldap_home_base, marker):
    """The folder itself holds a git repository whose hooks and fsmonitor would run on any git command."""
    hook = f"#!/bin/sh\nid > {marker}\n"
    folder = carol_folder(ldap_home_base, "teaching/withgit", {
        "lesson.ipynb": "{}\n",
        ".git/config": f"[core]\n\tfsmonitor = {marker}.sh\n\thooksPath = hooks\n",
        ".git/hooks/pre-commit": hook,
        ".git/hooks/post-commit": hook,
        "sub/.git/hooks/pre-commit": hook,
        "sub/.GIT/config": "[core]\n\tfsmonitor = true\n",
        "sub/part.py": "x = 1\n",
        ".gitmodules": '[submodule "sub2"]\n\tpath = sub2\n\turl = ext::sh -c id\n',
        "sub2/.git": "gitdir: ../.git/modules/sub2\n",  # a submodule's pointer file
    })
    for f in folder.rglob("*"):
        if f.is_file() and "hooks" in f.parts:
            f.chmod(0o755)
    reply = publish(carol_client, "dl-intro", "teaching/withgit")
    assert reply.status_code == 200, reply.text
    assert sorted(published_files(hub)) == ["lesson.ipynb", "sub/part.py"]
    assert not marker.exists()
    # A folder inside .git is refused by name before anything starts.
    refused = publish(carol_client, "dl-intro", "teaching/withgit/.git")
    assert refused.status_code == 400 and ".git" in refused.text


def test_links_out_of_the_folder_are_not_followed_or_published(hub, carol_client, ldap_home_base):
    folder = carol_folder(ldap_home_base, "teaching/links", {"lesson.py": "print(1)\n"})
    write_as(ldap_home_base / "alice" / "private" / "diary.txt", "secret\n", 10001)
    os.symlink("/etc/shadow", folder / "shadow")
    os.symlink(str(ldap_home_base / "alice"), folder / "alice-home")
    os.symlink("/etc", folder / "etc")
    for link in ("shadow", "alice-home", "etc"):
        os.lchown(folder / link, CAROL_UID, GID)
    reply = publish(carol_client, "dl-intro", "teaching/links")
    assert reply.status_code == 200, reply.text
    assert published_files(hub) == ["lesson.py"]
    assert sorted(reply.json()["skipped"]) == ["alice-home (link)", "etc (link)", "shadow (link)"]


def test_an_oversized_folder_is_refused_before_it_is_read(hub, carol_client, ldap_home_base):
    folder = carol_folder(ldap_home_base, "teaching/huge", {"lesson.py": "print(1)\n"})
    with open(folder / "data.bin", "wb") as fh:  # 2 GiB, sparse: no disk used, but 2 GiB to read
        fh.truncate(2 * 2**30)
    os.chown(folder / "data.bin", CAROL_UID, GID)
    before = head_of(hub)
    started = time.monotonic()
    reply = publish(carol_client, "dl-intro", "teaching/huge")
    took = time.monotonic() - started
    assert reply.status_code == 400, reply.text
    assert "2048 MiB, more than the 1024 MiB" in reply.text and "course_publishing.max_size" in reply.text
    assert took < 5, took  # refused from the listing, not after reading 2 GiB
    assert head_of(hub) == before
    print(f"2 GiB folder refused in {took:.2f} s")


def test_a_stalled_publish_is_stopped_at_the_timeout_and_publishes_nothing(hub, carol_client, ldap_home_base):
    """An instructor's process stops the reader (SIGSTOP): the hub kills both sides at course_publishing.timeout."""
    folder = carol_folder(ldap_home_base, "teaching/stall", {"README.md": "stall\n"})
    for i in range(6000):
        (folder / f"f{i:05d}.txt").write_text("x\n")
    chown_tree(folder, CAROL_UID)
    before = head_of(hub)
    report = Path(scratch_dir("condorhub-takeover-")) / "report.json"
    os.chmod(report.parent, 0o777)
    try:
        attacker = start_takeover(CAROL_UID, GID, b"", "stop", report)
        started = time.monotonic()
        reply = publish(carol_client, "dl-intro", "teaching/stall")
        took = time.monotonic() - started
        attacker.wait(30)
        stopped = json.loads(report.read_text())
    finally:
        shutil.rmtree(report.parent, ignore_errors=True)
    assert reply.status_code == 400 and "longer than 10s (course_publishing.timeout)" in reply.text, reply.text
    assert 9 < took < 20, took
    assert not process_exists(stopped["pid"])  # killed, not left stopped
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and writer_running(int(pid))]
    assert head_of(hub) == before


def test_the_hub_does_not_start_without_the_course_service_account(slapd):
    work = scratch_dir("condorhub-courses-noaccount-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["hub"]["courses_dir"] = str(work / "courses")
    site["courses"] = COURSES
    site["course_publishing"] = {"account": "condorhub-nosuch"}
    try:
        with pytest.raises(RuntimeError, match="hub exited") as err:
            Hub(work, site).start(timeout=60)
        assert "the course service account 'condorhub-nosuch' does not exist on the hub" in str(err.value)
        assert "useradd --system" in str(err.value)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_crafted_course_link_cannot_plant_kernel_startup_code(hub, ldap_home_base, carol_client):
    """The link of issue 10 item 5, clicked by alice on her real server behind the hub: refused, nothing
    lands in ~/.ipython; the home page's own link for her course still pulls."""
    carol_folder(ldap_home_base, "teaching/startup", {"00-planted.py": "open('/var/tmp/x', 'w')\n"})
    assert publish(carol_client, "dl-intro", "teaching/startup").status_code == 200
    alice = hub.client()
    alice.login("alice", "alice-pw")
    alice.wait_for_server("alice")
    source = str(hub.courses_dir / "dl-intro.git")
    crafted = alice.http.get(
        f"{hub.url}/user/alice/git-pull",
        params={"repo": source, "branch": "main", "targetpath": ".ipython/profile_default/startup"}, timeout=30,
    )
    assert crafted.status_code == 403
    assert "Course links may only pull into your ~/courses/ folder" in html.unescape(crafted.text)
    api = alice.http.get(
        f"{hub.url}/user/alice/git-pull/api",
        params={"repo": source, "branch": "main", "targetpath": ".ipython/profile_default/startup"}, timeout=30,
    )
    assert api.status_code == 403
    # IPython itself makes ~/.ipython/profile_default/startup when any of alice's kernels starts (earlier tests
    # of the session start some), so the folder may exist: what must not be there is the course's file.
    startup = ldap_home_base / "alice" / ".ipython" / "profile_default" / "startup"
    assert not (startup / "00-planted.py").exists()

    home = alice.http.get(f"{hub.url}/hub/home", timeout=15).text
    link = html.unescape(re.search(r'href="([^"]*git-pull\?repo=[^"]*dl-intro[^"]*)"', home).group(1))
    page = alice.http.get(f"{hub.url}{link}" if link.startswith("/") else link, timeout=30)
    assert page.status_code == 200 and "/user/alice/git-pull" in page.url, page.url
    # What the page's script then calls: the pull itself, into ~/courses/dl-intro.
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))
    assert query["targetpath"] == "courses/dl-intro"
    pulled = alice.http.get(f"{hub.url}/user/alice/git-pull/api", params=query, timeout=60)
    assert pulled.status_code == 200 and '"phase": "finished"' in pulled.text, pulled.text[-500:]
    assert (ldap_home_base / "alice" / "courses" / "dl-intro" / "00-planted.py").exists()
