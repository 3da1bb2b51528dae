"""Assignments, the pure parts: folder names, accounts from auth state, the folder writer's replace, records."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from condorhub.courses import assignments_writer, stream
from condorhub.courses.assignments import (
    AssignmentError,
    Records,
    _student_record,
    checked_name,
    listing,
)
from condorhub.courses.assignments_handlers import account_from_state
from condorhub.schema import CourseSettings
from tests.support.courses import crafted_stream

LIMITS = stream.Limits(max_bytes=1 << 20, max_files=100)
COURSE = CourseSettings(slug="dl-intro", title="DL", students_group="students", instructors_group="instructors")


@pytest.mark.parametrize("name", ["exercise-3", "Exercise 3", "hw_1", "week2.part+1"])
def test_plain_folder_names_are_accepted(name):
    assert checked_name(f"  {name} ") == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name the folder"),
        (None, "name the folder"),
        (3, "name the folder"),
        ("/etc", "not a path"),
        ("a/b", "not a path"),
        ("..", "not a path"),
        (".ssh", "hidden folders"),
        (".", "not a path"),
        ("-rf", "use letters"),
        ("x" * 101, "at most 100 characters"),
        ("tab\there", "use letters"),
    ],
)
def test_other_names_are_refused_with_the_reason(name, message):
    with pytest.raises(AssignmentError, match=message):
        checked_name(name)


def test_an_account_needs_a_complete_unprivileged_record():
    good = {"uid_number": 10001, "gid_number": 10000, "home_directory": "/home/alice"}
    account = account_from_state("alice", good)
    assert account is not None and (account.uid, account.gid, account.home) == (10001, 10000, "/home/alice")
    assert account_from_state("alice", None) is None  # never logged in: no auth state
    assert account_from_state("alice", {"uid_number": 10001}) is None
    assert account_from_state("root", {**good, "uid_number": 0}) is None
    assert account_from_state("x", {**good, "gid_number": 0}) is None
    assert account_from_state("x", {**good, "home_directory": "home/alice"}) is None
    assert account_from_state("x", {**good, "uid_number": "ten"}) is None


def write_folder(parent, name, payload: bytes, keep=None) -> dict:
    tmp = parent / f".{name}.incoming-test"
    tmp.mkdir()
    assignments_writer.receive(stream.StreamReader(io.BytesIO(payload), LIMITS), str(tmp))
    return assignments_writer.replace(str(tmp), str(parent / name), keep)


def files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("atomic", [True, False])
def test_a_new_copy_replaces_the_old_one_and_keeps_the_instructors_feedback(tmp_path, monkeypatch, atomic):
    if not atomic:  # as on NFS, where renameat2's exchange is refused
        monkeypatch.setattr(assignments_writer, "_exchange", lambda a, b: False)
    first = crafted_stream([("answer.py", b"v1\n"), ("old.txt", b"gone\n")])
    assert write_folder(tmp_path, "alice", first) == {"kept": False, "dropped": False}
    (tmp_path / "alice" / "feedback").mkdir()
    (tmp_path / "alice" / "feedback" / "notes.md").write_bytes(b"9/10\n")
    second = crafted_stream([("answer.py", b"v2\n"), ("feedback/notes.md", b"10/10, says the student\n")])
    assert write_folder(tmp_path, "alice", second, keep="feedback") == {"kept": True, "dropped": True}
    assert files(tmp_path / "alice") == {"answer.py": b"v2\n", "feedback/notes.md": b"9/10\n"}
    assert [p.name for p in tmp_path.iterdir()] == ["alice"]  # nothing left next to it


def run_writer(parent, name, payload: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "-m", "condorhub.courses.assignments_writer", str(parent), name, str(1 << 20), "100"],
        input=payload, capture_output=True,
    )


def test_a_cut_off_or_refused_stream_leaves_the_earlier_copy_as_it_was(tmp_path):
    done = run_writer(tmp_path, "alice", crafted_stream([("answer.py", b"v1\n")]))
    assert done.returncode == 0 and json.loads(done.stdout)["files"] == 1, done.stderr
    cut = run_writer(tmp_path, "alice", crafted_stream([("answer.py", b"v2\n")], end=False))
    assert cut.returncode == 2 and json.loads(cut.stderr)["refused"] is False
    escape = run_writer(tmp_path, "alice", crafted_stream([("../bob/answer.py", b"x\n")]))
    assert escape.returncode == 2 and json.loads(escape.stderr)["refused"] is True
    assert "`..` components are not allowed" in json.loads(escape.stderr)["error"]
    assert files(tmp_path) == {"alice/answer.py": b"v1\n"}
    assert [p.name for p in tmp_path.iterdir()] == ["alice"]


def test_a_failed_collect_keeps_the_record_of_the_earlier_copy():
    earlier = {"status": "collected", "at": "2026-12-01T10:00:00Z", "files": 2, "bytes": 10}
    assert _student_record({"status": "too_large"}, earlier, "later") == {**earlier, "last_attempt": "too_large"}
    assert _student_record({"status": "missing"}, None, "now") == {"status": "missing", "at": "now"}
    new = _student_record({"status": "collected", "files": 1, "bytes": 3}, earlier, "now")
    assert new == {"status": "collected", "at": "now", "files": 1, "bytes": 3}


def test_a_student_sees_only_returned_work_and_nothing_of_others(tmp_path):
    records = Records(tmp_path)
    records.save("dl-intro", {"assignments": {
        "exercise-3": {
            "collected": {"at": "t1", "by": "carol"},
            "students": {"alice": {"status": "collected"}, "frank": {"status": "missing"}},
            "returned": {"at": "t2", "by": "carol", "feedback": "feedback"},
            "fetched": {"frank": "t3"},
        },
        "exercise-4": {"collected": {"at": "t1", "by": "carol"}, "students": {"alice": {"status": "collected"}}},
    }})
    assert (tmp_path / "assignments" / "dl-intro.json").stat().st_mode & 0o077 == 0
    mine = listing(COURSE, records, student="alice")
    assert mine == {"course": "dl-intro", "assignments": {
        "exercise-3": {"returned": "t2", "fetched": None, "submitted": True},
    }}
    assert "frank" not in json.dumps(mine)
    assert set(listing(COURSE, records)["assignments"]) == {"exercise-3", "exercise-4"}
