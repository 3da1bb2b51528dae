"""The writing side of a publish against hostile streams (issue 10, item 1).

The writer (condorhub.courses.writer) runs for real, as the course service account, on a real bare
repository, fed the streams a taken-over reader could send. Every refused stream leaves the branch where
it was and no objects behind. The path rules themselves are pure logic and tested directly.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from condorhub.courses import stream
from condorhub.courses.publish import PublishError, checked_folder, prepare_repository_dir, ServiceAccount
from tests.support.courses import crafted_stream, ensure_course_account, git_out
from tests.support.scratch import scratch_dir

LIMITS = ["1000000", "50"]  # 1 MB, 50 files


@pytest.fixture
def account():
    return ensure_course_account()


@pytest.fixture
def repo(account):
    work = scratch_dir("condorhub-writer-")  # pytest's tmp_path is 0700: the account could not enter it
    path = work / "course.git"
    path.mkdir()
    os.chown(path, account.pw_uid, account.pw_gid)
    yield path
    shutil.rmtree(work, ignore_errors=True)


def write(repo: Path, account, data: bytes, limits=LIMITS) -> tuple[int, dict]:
    result = subprocess.run(
        [sys.executable, "-I", "-m", "condorhub.courses.writer", str(repo), "main", "carol", "test publish", *limits],
        input=data, capture_output=True, user=account.pw_uid, group=account.pw_gid, extra_groups=[account.pw_gid],
        cwd="/", env={"PATH": "/usr/bin:/bin"}, timeout=60,
    )
    text = result.stdout if result.returncode == 0 else result.stderr.splitlines()[-1]
    return result.returncode, json.loads(text)


def objects(repo: Path) -> set[str]:
    return {str(p.relative_to(repo)) for p in (repo / "objects").rglob("*") if p.is_file()}


def head(repo: Path) -> str:
    return git_out(repo, "rev-parse", "--verify", "-q", "refs/heads/main")


@pytest.fixture
def published(repo, account):
    """The repository after one good publish (so refusals have a branch to leave alone)."""
    rc, result = write(repo, account, crafted_stream([("lesson.py", b"print(1)\n")]))
    assert rc == 0 and result["changed"], result
    return repo


@pytest.mark.parametrize(
    "entries, end, expected",
    [
        ([("ok.txt", b"1"), (".git/config", b"[core]\n\tfsmonitor = touch /tmp/x\n")], True, "'.git' component"),
        ([(".git/hooks/pre-commit", b"#!/bin/sh\nid\n")], True, "'.git' component"),
        ([("sub/.GIT/hooks/post-checkout", b"x")], True, "'.GIT' component"),
        ([(".git./config", b"x")], True, "'.git.' component"),
        ([("GIT~1/config", b"x")], True, "'GIT~1' component"),
        ([(".gitmodules", b"[submodule \"x\"]\n\turl = ext::sh -c id\n")], True, "'.gitmodules' component"),
        ([("/etc/cron.d/x", b"x")], True, "only relative paths"),
        ([("../../outside", b"x")], True, "`..` components"),
        ([("a//b", b"x")], True, "empty, `.` and `..`"),
        ([("new\nline", b"x")], True, "control characters"),
        ([("a", b"1"), ("a", b"2")], True, "appears twice"),
        ([("a", b"1"), ("a/b", b"2")], True, "inside a path that is a file"),
        ([("ok.txt", b"1")], False, "ended before its end record"),
        ([(f"f{i}", b"") for i in range(51)], True, "more than 50 files"),
    ],
)
def test_a_hostile_stream_is_refused_and_changes_nothing(published, account, entries, end, expected):
    before, stored = head(published), objects(published)
    rc, result = write(published, account, crafted_stream(entries, end=end))
    assert rc != 0 and expected in result["error"], result
    assert head(published) == before
    assert objects(published) == stored  # nothing of the refused stream was kept


def test_a_claimed_2_gib_file_is_refused_from_its_header(published, account):
    before = head(published)
    # The header claims 2 GiB; only a few bytes follow. The writer stops at the header, reads nothing more.
    data = stream.MAGIC + b'F %d - "big.bin"\n' % (2 * 2**30) + b"x" * 100
    rc, result = write(published, account, data)
    assert rc == 2 and "more than 1000000 bytes" in result["error"] and "course_publishing.max_size" in result["error"]
    assert head(published) == before


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", "sent nothing"),
        (b"tar archive\x00\x00", "not a condorhub publish stream"),
        (stream.MAGIC + b"F 1 - " + b'"' + b"a" * 9000 + b'"\n', "too long"),
        (stream.MAGIC + b'F 5 - "a"\nab', "ended inside a file"),
        (stream.MAGIC + b'F 1 - "a"\nxE 2 1\n', "end record counts 2 files"),
        (stream.MAGIC + b'F 1 - "a"\nxE 1 1\nmore', "data after the end record"),
        (stream.MAGIC + b'L 1 - "a"\nx', "unknown record"),
    ],
)
def test_a_malformed_stream_is_refused(published, account, data, expected):
    before = head(published)
    rc, result = write(published, account, data)
    assert rc == 2 and expected in result["error"], result
    assert head(published) == before


def test_odd_but_valid_names_are_stored_exactly_and_the_repository_is_the_accounts(repo, account):
    names = ['with space.md', 'quote"d.py', "odd %s *?[x].txt", "ünïcode/Übung 1.ipynb", "-dash", ".hidden"]
    rc, result = write(repo, account, crafted_stream([(n, n.encode()) for n in names]))
    assert rc == 0 and result == {"commit": result["commit"], "changed": True, "files": len(names)}
    listed = git_out(repo, "-c", "core.quotePath=false", "ls-tree", "-r", "-z", "--name-only", "main").split("\0")
    assert sorted(filter(None, listed)) == sorted(names)
    assert git_out(repo, "show", "main:quote\"d.py") == 'quote"d.py'
    owners = {os.lstat(os.path.join(d, n)).st_uid for d, ds, fs in os.walk(repo) for n in ds + fs}
    assert owners == {account.pw_uid}
    assert not (repo / "hooks" / "pre-commit").exists()
    # The same snapshot again: no new commit.
    rc, again = write(repo, account, crafted_stream([(n, n.encode()) for n in names]))
    assert rc == 0 and again == {"commit": result["commit"], "changed": False, "files": len(names)}


def test_the_path_rules_on_their_own():
    for bad in ("", ".", "a/./b", "a/../b", "/abs", "a\\b", ".git", "x/.Git/y", ".git ", "git~1", "a\x00b", "\udcff"):
        with pytest.raises(stream.StreamRefused):
            stream.check_path(bad)
    for good in ("a", "a/b.c", ".github/workflows/x.yml", ".gitignore", "...", "git", "dot.git"):
        assert stream.check_path(good) == good
    reader = stream.StreamReader(io.BytesIO(crafted_stream([("a", b"12")])), stream.Limits(10, 10))
    entry = reader.next_entry()
    assert (entry.path, entry.size, reader.read_data(), reader.read_data()) == ("a", 2, b"12", b"")
    assert reader.next_entry() is None


def test_the_folder_argument():
    for refused, why in [("", "name the folder"), (".", "name the folder"), ("./", "name the folder"),
                         ("/etc", "relative to your home"), ("a/../..", "without `..`"), ("x/.git/hooks", ".git")]:
        with pytest.raises(PublishError, match=why):
            checked_folder(refused)
    assert str(checked_folder(" teaching/dl ")) == "teaching/dl"


def test_a_repository_an_older_root_hub_made_is_handed_to_the_account(tmp_path, account):
    old = tmp_path / "old.git"
    subprocess.run(["git", "init", "-q", "--bare", str(old)], check=True)
    service = ServiceAccount(account.pw_name, account.pw_uid, account.pw_gid)
    prepare_repository_dir(old, service)
    assert {os.lstat(os.path.join(d, n)).st_uid for d, ds, fs in os.walk(old) for n in ds + fs} == {account.pw_uid}
    # One that belongs to someone else entirely is not taken over.
    foreign = tmp_path / "foreign.git"
    foreign.mkdir()
    os.chown(foreign, 10003, 10000)
    with pytest.raises(PublishError, match="belongs to uid 10003"):
        prepare_repository_dir(foreign, service)
