"""In Chromium: carol publishes a folder of hers from the Lab (*Publish to course…*), and alice finds it in
her server running as an HTCondor job on the pool's node (issue 13 parts 1, 2 and 6).

Everything is real: the hub (with a pool, as tests/test_condor_e2e.py starts it) keeps its course
repositories in the folder the session's pool mounts read-only into its node at the same path (as an
execute node mounts the hub's courses folder), the node's git trusts them because the htcondor role says
so, and alice's batch server pulls with nbgitpuller as every server does. carol's server forwards the
publish to the hub with its own API token; the API tests below show what that token may do and what the
tokens of others may not, and that bad input is refused with nothing published (the branch does not move).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import htcondor2
import pytest
import requests

from devstack import node_root as wr
from devstack.directory import DEMO_USERS
from tests.support.browser import chromium_page, login_to_lab, screenshot
from tests.support.courses import ensure_course_account, git_out
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.browser, pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

USERS = {u.uid: u for u in DEMO_USERS}
COURSES = [
    # Slugs of their own: the homes are the session's, and test_e2e_courses' dl-intro comes from another hub.
    {"slug": "dl-lab", "title": "Deep learning lab", "students_group": "students", "instructors_group": "instructors"},
    # dave (guests) teaches another course: he may publish, but not to carol's
    {"slug": "thesis-notes", "title": "Thesis notes", "students_group": "researchers",
     "instructors_group": "guests"},
]  # fmt: skip
DIALOG = ".jp-condorhub-publish-dialog"


@pytest.fixture(scope="module")
def hub(slapd, condor_pool):
    work = scratch_dir("condorhub-publish-hub-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    # The folder the pool's node mounts read-only: what the courses folder on NFS is for an execute node.
    site["hub"]["courses_dir"] = str(condor_pool.courses_dir)
    site["courses"] = COURSES
    site["course_publishing"] = {"max_size": "1M", "timeout": "30s"}
    site["htcondor"] = {
        "condor_config": str(condor_pool.condor_config_path),
        "token_file": str(condor_pool.token_path),
        "user_tokens": {"signing_key_file": str(condor_pool.signing_key_path)},
        "server_venv": wr.WORKER_VENV,
        "poll_interval": 1,
        "query_timeout": 10,
        "queue_timeout": "5m",
        "server_start_timeout": "2m",
        "accounting_groups": {"student": "group_students", "researcher": "group_researchers"},
    }
    site["profiles"].append(
        {"slug": "cpu", "kind": "condor", "display_name": "CPU batch", "roles": ["student", "researcher"],
         "cpus": 1, "memory": "1G", "runtime": "1h"}
    )  # fmt: skip
    ensure_course_account()
    hub = Hub(work, site).start()
    hub.courses_dir = condor_pool.courses_dir
    yield hub
    print(hub.log_tail(80))  # shown by pytest when a test of this module failed
    hub.stop()
    hub.kill_servers()
    schedd = htcondor2.Schedd()
    schedd.act(htcondor2.JobAction.Remove, f'CondorhubHub =?= "{hub_identity(work)}"')
    shutil.rmtree(work, ignore_errors=True)


def hub_identity(work: Path) -> str:
    import socket

    return f"{socket.getfqdn()}:{work / 'state'}"


def write_as(home_base: Path, user: str, rel: str, data: str | bytes = "", *, size: int | None = None) -> Path:
    """``~user/rel`` with its folders, owned by the user as their editor would make them (``size``: sparse)."""
    person = USERS[user]
    home = home_base / user
    path = home / rel
    folder = home
    for part in Path(rel).parent.parts:
        folder = folder / part
        folder.mkdir(exist_ok=True)
        os.chown(folder, person.uid_number, person.gid_number)
    if size is not None:
        with open(path, "wb") as fh:
            fh.truncate(size)
    else:
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chown(path, person.uid_number, person.gid_number)
    return path


def head_of(hub, slug: str = "dl-lab") -> str:
    return git_out(hub.courses_dir / f"{slug}.git", "rev-parse", "--verify", "-q", "refs/heads/main")


def published_files(hub, slug: str = "dl-lab") -> list[str]:
    return sorted(git_out(hub.courses_dir / f"{slug}.git", "ls-tree", "-r", "--name-only", "main").splitlines())


def login(hub: Hub, user: str) -> HubClient:
    client = hub.client()
    assert client.login(user, f"{user}-pw", follow=False).status_code == 302
    return client


def start_server(client: HubClient, user: str, profile: str, timeout: float = 240) -> list[dict]:
    """Start ``user``'s server with ``profile`` through the spawn form; the progress events until ready."""
    page = client.spawn_form({"profile": profile})
    assert page.status_code == 200, page.text[-2000:]
    events = []
    with client.http.get(
        f"{client.url}/hub/api/users/{user}/server/progress",
        headers={"Accept": "text/event-stream", "X-XSRFToken": client._xsrf()},
        stream=True,
        timeout=timeout,
    ) as stream:
        for line in stream.iter_lines(chunk_size=None, decode_unicode=True):
            if line and line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("ready") or events[-1].get("failed"):
                    break
    assert events and events[-1].get("ready"), [e.get("message") for e in events]
    return events


def stop_server(client: HubClient, user: str) -> None:
    client.api("DELETE", f"/users/{user}/server", timeout=60)
    deadline = time.monotonic() + 90
    while client.api("GET", "/user").json().get("servers") and time.monotonic() < deadline:
        time.sleep(0.5)


def server_token(hub: Hub, user: str) -> str:
    """The API token of ``user``'s running server of ``hub``, from its process's environment (root sees the
    node's too; other hubs of a test run may have servers of the same user)."""
    hub_api = hub.site["hub"]["hub_bind_url"].rstrip("/").encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        if (
            env.get(b"JUPYTERHUB_USER") == user.encode()
            and env.get(b"JUPYTERHUB_API_URL", b"").startswith(hub_api)
            and b"JUPYTERHUB_API_TOKEN" in env
        ):
            return env[b"JUPYTERHUB_API_TOKEN"].decode()
    raise AssertionError(f"no running server process of {user}")


def with_token(hub: Hub, token: str, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(
        method,
        f"{hub.url}/hub/api{path}",
        headers={"Authorization": f"token {token}"},
        data=json.dumps(body) if body is not None else None,
        timeout=60,
    )


def lab_api(client: HubClient, user: str, method: str, path: str, **kw) -> requests.Response:
    """``user``'s server's condorhub API through the proxy, with the browser's cookie and XSRF token."""
    xsrf = client.http.cookies.get("_xsrf", path=f"/user/{user}/") or client.http.cookies.get("_xsrf")
    return client.http.request(
        method, f"{client.url}/user/{user}/condorhub/api/{path}", headers={"X-XSRFToken": xsrf}, timeout=90, **kw
    )


def visit(client: HubClient, owner: str) -> None:
    """Open ``owner``'s Lab as another user may (JupyterHub asks "Authorize access?" once; the test confirms)."""
    page = client.http.get(f"{client.url}/user/{owner}/lab", timeout=30)
    if page.status_code == 200 and "/hub/api/oauth2/authorize" in page.url:
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        scopes = re.findall(r'<input type="hidden" name="scopes" value="([^"]*)"', page.text)
        page = client.http.post(page.url, data={**fields, "scopes": scopes}, timeout=30)
    assert page.status_code == 200 and page.url.startswith(f"{client.url}/user/{owner}/"), page.url


def wait_for_course(client: HubClient, user: str, slug: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        reply = lab_api(client, user, "GET", "courses")
        assert reply.status_code == 200, reply.text
        state = {c["slug"]: c for c in reply.json()["courses"]}[slug]
        if state["state"] not in ("waiting", "pulling"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"course {slug} still {state} after {timeout} s")


@pytest.fixture(scope="module")
def carol(hub):
    """carol logged in, her login-node server running (the Lab she publishes from)."""
    client = login(hub, "carol")
    client.http.get(f"{hub.url}/hub/spawn", timeout=60)  # instructors: one profile, starts without a form
    client.wait_for_server("carol")
    return client


# --- the teaching workflow, in the browser ------------------------------------------------------------------


def test_carol_publishes_from_the_lab_and_alice_finds_it_in_her_htcondor_server(hub, carol, ldap_home_base):
    folder = "teaching/week1"
    write_as(ldap_home_base, "carol", f"{folder}/README.md", "Week 1: read this first.\n")
    write_as(ldap_home_base, "carol", f"{folder}/lesson1.py", "print('hello from week 1')\n")
    write_as(ldap_home_base, "carol", f"{folder}/data/events.csv", "x,y\n" + "1,2\n" * 20000)
    write_as(ldap_home_base, "carol", f"{folder}/.git/config", "[core]\n")  # her own git: never published
    link = ldap_home_base / "carol" / folder / "secrets"
    link.unlink(missing_ok=True)
    os.symlink("/etc/shadow", link)
    os.lchown(link, USERS["carol"].uid_number, USERS["carol"].gid_number)
    before = head_of(hub)
    shutil.rmtree(ldap_home_base / "alice" / "courses" / "dl-lab", ignore_errors=True)

    with chromium_page() as page:
        login_to_lab(page, hub.url, "carol")
        page.goto(f"{hub.url}/user/carol/lab/tree/teaching")
        entry = page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text="week1"))
        entry.first.wait_for(timeout=30_000)
        entry.first.click(button="right")
        page.locator(".lm-Menu-item", has_text="Publish to course…").click()
        dialog = page.locator(DIALOG)
        dialog.wait_for(timeout=30_000)
        count = dialog.locator(".jp-condorhub-publish-count")
        count.wait_for(timeout=30_000)
        # What will be published, counted in her own server: three files; the link and .git are named as left out.
        assert count.inner_text().startswith("3 files"), count.inner_text()
        assert "Deep learning lab (dl-lab)" in dialog.locator("select").inner_text()
        assert "data/events.csv" in dialog.locator(".jp-condorhub-publish-biggest").inner_text()
        left_out = dialog.locator(".jp-condorhub-publish-skipped").inner_text()
        assert "secrets (link)" in left_out and ".git/" in left_out, left_out
        dialog.locator(".jp-Dialog-footer .jp-mod-accept").click()
        done = dialog.locator(".jp-condorhub-publish-status.jp-mod-success")
        try:
            done.wait_for(timeout=60_000)
        except Exception:
            screenshot(page, "publish-dialog-failed")
            raise
        commit = done.get_attribute("data-commit")
        text = done.inner_text()
        screenshot(page, "publish-dialog")
    assert commit and commit != before and head_of(hub) == commit
    assert f"version {commit[:10]} (3 files)" in text, text
    assert published_files(hub) == ["README.md", "data/events.csv", "lesson1.py"]

    # alice starts a batch server: an HTCondor job on the pool's node, which sees the courses read-only.
    alice = login(hub, "alice")
    events = start_server(alice, "alice", "cpu")
    assert any(e.get("message", "").startswith("Submitted to HTCondor as job") for e in events), events
    try:
        alice.wait_for_server("alice")  # through the Lab page, as a browser: the server's own cookie
        state = wait_for_course(alice, "alice", "dl-lab")
        assert state["state"] == "done", state
        course = ldap_home_base / "alice" / "courses" / "dl-lab"
        assert (course / "README.md").read_text() == "Week 1: read this first.\n"
        assert (course / "data" / "events.csv").stat().st_size == 4 + 4 * 20000
        assert not (course / "secrets").exists()
        assert os.stat(course / "README.md").st_uid == USERS["alice"].uid_number
        # Her server really is the job on the node: it reports the node's hostname through the hub.
        job = htcondor2.Schedd().query('CondorhubUser == "alice" && JobStatus == 2', projection=["RemoteHost"])
        assert job, "alice's server is not a running HTCondor job"
    finally:
        stop_server(alice, "alice")


def test_the_gpu_node_reads_the_course_repositories_and_cannot_change_them(hub, condor_pool, carol, ldap_home_base):
    """What the pull in a batch server relies on, seen from inside the node: git there trusts the repositories
    (the htcondor role's safe.directory; without it: "dubious ownership"), and even root cannot write them
    (read-only, as nfs_client mounts the courses folder on an execute node)."""
    write_as(ldap_home_base, "carol", "teaching/node/lesson.py", "print('node')\n")
    reply = lab_api(carol, "carol", "POST", "courses/publish", json={"course": "dl-lab", "path": "teaching/node"})
    assert reply.status_code == 200, reply.text
    repo = hub.courses_dir / "dl-lab.git"
    seen = condor_pool.run_in_root(["git", "ls-remote", "--heads", str(repo)], user="alice", check=False)
    assert seen.returncode == 0 and reply.json()["commit"] in seen.stdout, seen.stderr
    write = condor_pool.run_in_root(["touch", str(repo / "planted")], check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr, (write.returncode, write.stderr)
    assert not (repo / "planted").exists()


# --- the API behind the dialog: who may publish, and bad input ------------------------------------------------


def test_the_lab_refuses_bad_input_and_nothing_is_published(hub, carol, ldap_home_base):
    write_as(ldap_home_base, "carol", "teaching/huge/lesson.py", "print(1)\n")
    write_as(ldap_home_base, "carol", "teaching/huge/data.bin", size=2 * 2**20)  # over the 1 MiB limit
    write_as(ldap_home_base, "carol", "teaching/ok/lesson.py", "print('ok')\n")
    before = head_of(hub)

    missing = lab_api(carol, "carol", "POST", "courses/publish", json={"course": "dl-lab", "path": "teaching/nope"})
    assert missing.status_code == 404 and "There is no folder 'teaching/nope'" in missing.json()["message"]

    preview = lab_api(carol, "carol", "GET", "courses/publish", params={"path": "teaching/huge"})
    assert preview.status_code == 200, preview.text
    assert preview.json()["files"] == 2 and "2 MiB, more than the 1 MiB" in preview.json()["problem"]
    huge = lab_api(carol, "carol", "POST", "courses/publish", json={"course": "dl-lab", "path": "teaching/huge"})
    assert huge.status_code == 400, huge.text
    assert "more than the 1 MiB" in huge.json()["message"] and "Nothing was published" in huge.json()["message"]

    other = lab_api(carol, "carol", "POST", "courses/publish", json={"course": "thesis-notes", "path": "teaching/ok"})
    assert other.status_code == 403 and "Only instructors of Thesis notes" in other.json()["message"]

    home = lab_api(carol, "carol", "POST", "courses/publish", json={"course": "dl-lab", "path": ""})
    assert home.status_code == 400 and "never published" in home.json()["message"]
    assert head_of(hub) == before  # the branch did not move


def test_only_a_servers_own_token_publishes_and_only_as_its_owner(hub, carol, ldap_home_base):
    write_as(ldap_home_base, "carol", "teaching/bytoken/notes.md", "published with carol's server token\n")
    write_as(ldap_home_base, "alice", "mine/notes.md", "alice's own\n")
    carol_token = server_token(hub, "carol")

    # carol's server token is what the Lab uses: it lists her course and publishes as carol.
    teaching = with_token(hub, carol_token, "GET", "/condorhub/teaching")
    assert teaching.status_code == 200 and [c["slug"] for c in teaching.json()["courses"]] == ["dl-lab"]
    ok = with_token(hub, carol_token, "POST", "/condorhub/courses/dl-lab/publish", {"folder": "teaching/bytoken"})
    assert ok.status_code == 200, ok.text
    assert published_files(hub) == ["notes.md"]
    before = head_of(hub)

    # alice's server token: she teaches nothing, so no course to publish to, and carol's course refuses her.
    alice = login(hub, "alice")
    start_server(alice, "alice", "login-node")
    try:
        alice.wait_for_server("alice")
        alice_token = server_token(hub, "alice")
        assert with_token(hub, alice_token, "GET", "/condorhub/teaching").json()["courses"] == []
        refused = with_token(hub, alice_token, "POST", "/condorhub/courses/dl-lab/publish", {"folder": "mine"})
        assert refused.status_code == 403 and "Only instructors of" in refused.json()["message"], refused.text
        # Through her Lab as well: the teaching list is empty, so the menu item is not shown.
        assert lab_api(alice, "alice", "GET", "courses/teaching").json()["courses"] == []
        # carol may open her student's server (the course's RBAC), but not publish through it: that would be
        # with alice's token, in alice's name. Her server refuses before asking the hub.
        visit(carol, "alice")
        visitor = lab_api(carol, "alice", "POST", "courses/publish", json={"course": "dl-lab", "path": "mine"})
        assert visitor.status_code == 403 and "Only alice may publish from this server" in visitor.json()["message"]
    finally:
        stop_server(alice, "alice")

    # dave teaches thesis-notes: his server token has the scope, but not for carol's course.
    dave = login(hub, "dave")
    start_server(dave, "dave", "login-node")
    try:
        dave_token = server_token(hub, "dave")
        assert [c["slug"] for c in with_token(hub, dave_token, "GET", "/condorhub/teaching").json()["courses"]] == [
            "thesis-notes"
        ]
        refused = with_token(hub, dave_token, "POST", "/condorhub/courses/dl-lab/publish", {"folder": "x"})
        assert refused.status_code == 403 and "Only instructors of Deep learning lab" in refused.json()["message"]
    finally:
        stop_server(dave, "dave")

    # No valid token at all: a 403 in words (an API answers, it does not redirect to the login page).
    bogus = with_token(hub, "not-a-token", "GET", "/condorhub/teaching")
    assert bogus.status_code == 403 and "invalid credentials" in bogus.json()["message"], bogus.text

    # A token carol made for something else (reading her own name) may not publish, although she may.
    made = carol.api("POST", "/users/carol/tokens", json={"scopes": ["read:users:name!user"], "note": "narrow"})
    assert made.status_code == 201, made.text
    narrow = with_token(hub, made.json()["token"], "POST", "/condorhub/courses/dl-lab/publish",
                        {"folder": "teaching/bytoken"})  # fmt: skip
    assert narrow.status_code == 403 and "custom:condorhub-courses:publish" in narrow.json()["message"], narrow.text
    assert head_of(hub) == before
