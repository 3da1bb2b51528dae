"""Course pulls run in the background after the server listens (issue 10, item 7).

A real jupyter-server with condorhub's course extension and nbgitpuller, a real local course repository
and a "git daemon" that accepts connections and never answers: the server answers at once, the state
endpoint shows the quick course done and the hanging one pulling, and the deadline kills the hung pull.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.support.courses import SilentGitDaemon

GIT_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}


@pytest.fixture
def silent_daemon():
    daemon = SilentGitDaemon()
    yield daemon
    daemon.close()


@pytest.fixture
def course_repo(tmp_path):
    work = tmp_path / "lesson"
    work.mkdir()
    (work / "week1.md").write_text("Week 1\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=work, env=GIT_ENV, check=True)
    bare = tmp_path / "lesson.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], env=GIT_ENV, check=True)
    return bare


@pytest.fixture
def courses_env(monkeypatch, silent_daemon, course_repo, tmp_path):
    courses = [
        {"slug": "quick", "source": str(course_repo), "branch": "main", "target": "courses/quick"},
        {"slug": "hangs", "source": f"git://127.0.0.1:{silent_daemon.port}/never.git", "branch": "main",
         "target": "courses/hangs"},
        {"slug": "empty", "source": str(tmp_path / "nothing-yet.git"), "branch": "main", "target": "courses/empty"},
    ]
    monkeypatch.setenv("CONDORHUB_COURSES", json.dumps(courses))
    return courses


@pytest.fixture
def jp_server_config(courses_env, jp_data_dir):
    return {"ServerApp": {"jpserver_extensions": {"nbgitpuller": True, "condorhub.lab.courses.sync": True}}}


def states(api) -> dict[str, dict]:
    reply = api("GET", "condorhub/api/courses")
    assert reply.code == 200, reply
    return {c["slug"]: c for c in reply.json["courses"]}


def wait_until(api, predicate, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = states(api)
        if predicate(current):
            return current
        time.sleep(0.2)
    raise AssertionError(f"course states did not get there: {current}")


def test_a_hanging_course_does_not_delay_the_server_and_its_state_is_visible(
    jp_serverapp, api, run, jp_home_dir, silent_daemon
):
    pulls = jp_serverapp.web_app.settings["condorhub_course_pulls"]
    pulls.timeout = 6  # the deadline of one pull (120 s in production), short for the test
    started = time.monotonic()
    run(jp_serverapp._post_start())  # what ServerApp.start runs once it listens (pytest-jupyter skips it)
    first = states(api)
    answered = time.monotonic() - started
    assert answered < 2, answered  # the server answers while the pulls run
    assert first["hangs"]["state"] in ("waiting", "pulling")

    current = wait_until(api, lambda s: s["quick"]["state"] == "done" and s["hangs"]["state"] == "pulling", 30)
    assert (jp_home_dir / "courses" / "quick" / "week1.md").read_text() == "Week 1\n"
    assert current["empty"]["state"] == "unpublished"
    assert silent_daemon.connections, "the hanging course never reached the silent daemon"

    current = wait_until(api, lambda s: s["hangs"]["state"] == "failed", 30)
    assert "no answer from git://127.0.0.1" in current["hangs"]["message"] and "within 6 s" in current["hangs"]["message"]
    assert not pulls._children  # the hung git was killed, not left behind
    print(f"server answered {answered:.2f} s after start; hung pull stopped after {pulls.timeout} s")


def test_the_state_endpoint_needs_the_users_login(jp_fetch, run, jp_serverapp):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as err:
        run(jp_fetch("condorhub/api/courses", headers={"Authorization": ""}))
    assert err.value.code == 403
