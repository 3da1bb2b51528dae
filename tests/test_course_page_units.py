"""Pure logic of the course page: what a row says about a student's server, whom the page is for, and the
course history as git prints it.

The spawners here are stand-ins with the attributes the hub's real ones carry (JupyterHub's User and
Spawner, condorhub's ProfileSpawner with its HTCondorSpawner child); the browser test
(tests/test_browser_course_page.py) shows the same rows on a real hub.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from condorhub.courses.history import _FORMAT, parse_log
from condorhub.courses.page import may_see, moment, server_of
from condorhub.schema import CondorProfile, CourseSettings, LoginNodeProfile

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
GPU = CondorProfile(slug="gpu1", kind="condor", display_name="1 GPU", roles=["student"], cpus=4, memory="16G", gpus=1)
LOGIN = LoginNodeProfile(slug="login-node", kind="login_node", display_name="Login node", roles=["student"], cpus=1, memory="2G")
COURSE = CourseSettings(slug="dl-intro", title="DL", students_group="students", instructors_group="instructors")


def student(spawner=None, started=None, activity=None):
    orm_spawner = SimpleNamespace(started=started, last_activity=activity)
    return SimpleNamespace(
        name="alice",
        spawners={"": spawner} if spawner is not None else {},
        orm_user=SimpleNamespace(orm_spawners={"": orm_spawner}, last_activity=activity),
    )


def spawner(profile, *, active=True, ready=False, pending=None, job_id="", node="", run_started=0, submitted_at=0):
    child = SimpleNamespace(job_id=job_id, node=node, run_started=run_started, submitted_at=submitted_at)
    return SimpleNamespace(
        active=active, ready=ready, pending=pending, profile=profile, child_spawner=child, last_stop_reason=""
    )


def test_a_gpu_server_queued_in_htcondor_says_so_with_its_job_and_since_submission():
    submitted = (NOW - timedelta(minutes=5)).timestamp()
    row = server_of(student(spawner(GPU, pending="spawn", job_id="42.0", submitted_at=submitted)))
    assert (row.state, row.state_text) == ("pending", "queued in HTCondor (job 42.0)")
    assert row.profile == "1 GPU" and row.node == "" and row.since.iso == "2026-12-01T13:55:00+00:00"


def test_a_running_gpu_server_names_its_node_and_counts_from_the_jobs_start():
    started = int((NOW - timedelta(hours=2)).timestamp())
    row = server_of(student(spawner(GPU, ready=True, job_id="42.0", node="gpu-node-1", run_started=started)))
    assert (row.state, row.node, row.job_id) == ("running", "gpu-node-1", "42.0")
    assert row.since.iso == "2026-12-01T12:00:00+00:00"


def test_a_job_that_runs_but_whose_server_has_not_answered_is_starting_on_its_node():
    row = server_of(student(spawner(GPU, pending="spawn", job_id="42.0", node="gpu-node-1")))
    assert (row.state, row.state_text) == ("pending", "starting on gpu-node-1")


def test_a_login_node_server_is_on_the_login_node_since_the_hub_started_it():
    started = datetime(2026, 12, 1, 13, 30)  # naive UTC, as JupyterHub's database keeps it
    row = server_of(student(spawner(LOGIN, ready=True), started=started, activity=started))
    assert (row.state, row.profile, row.node, row.job_id) == ("running", "Login node", "login node", "")
    assert row.since.iso == "2026-12-01T13:30:00+00:00" and row.last_activity.iso == row.since.iso


def test_stopping_and_stopped_servers():
    assert server_of(student(spawner(LOGIN, ready=True, pending="stop"))).state == "stopping"
    never = server_of(student())  # never started since the hub started: no spawner is made for the page
    assert (never.state, never.profile, never.last_activity) == ("stopped", "", None)
    held = spawner(GPU, active=False)
    held.last_stop_reason = "HTCondor held your server's job 42.0: out of memory"
    row = server_of(student(held))
    assert row.state == "stopped" and "out of memory" in row.note and row.profile == ""


def test_the_page_is_for_the_courses_instructors_and_admins():
    def user(*groups, admin=False):
        return SimpleNamespace(admin=admin, groups=[SimpleNamespace(name=g) for g in groups])

    assert may_see(user("instructors"), COURSE)
    assert may_see(user(admin=True), COURSE)
    assert not may_see(user("students"), COURSE)
    assert not may_see(user("guests"), COURSE)


def test_moments_read_as_dates_in_utc_with_how_long_ago():
    assert moment(None) is None
    assert moment(NOW - timedelta(seconds=20), NOW).text == "2026-12-01 13:59 UTC (just now)"
    assert moment(NOW - timedelta(minutes=90), NOW).text == "2026-12-01 12:30 UTC (1 h 30 min ago)"
    assert moment(NOW - timedelta(days=3), NOW).text.endswith("(3 days ago)")


def test_the_history_parses_what_git_log_prints(tmp_path):
    repo = tmp_path / "course"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "carol", "GIT_AUTHOR_EMAIL": "carol@condorhub", "GIT_COMMITTER_NAME": "carol",
           "GIT_COMMITTER_EMAIL": "carol@condorhub"}

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True).stdout

    repo.mkdir()
    git("init", "-q", "--initial-branch=main")
    for name in ("a.ipynb", "b.py"):
        (repo / name).write_text(name)
    git("add", ".")
    git("commit", "-q", "-m", "Published by carol from ~/teaching/dl")
    (repo / "a.ipynb").write_text("changed")
    git("commit", "-q", "-am", "Week 2: \u00e9nergie, \"quotes\" | pipes")
    versions = parse_log(git("log", f"--format={_FORMAT}", "--shortstat", "--no-color", "refs/heads/main", "--"))
    assert [(v.message, v.files_changed, v.author) for v in versions] == [
        ('Week 2: \u00e9nergie, "quotes" | pipes', 1, "carol"),
        ("Published by carol from ~/teaching/dl", 2, "carol"),
    ]
    assert versions[0].commit.startswith(versions[0].short) and versions[0].date.tzinfo is UTC
