"""Pure logic of publishing from the Lab: who gets the publish scope, and the preview a folder shows.

The preview uses the hub reader's own listing, so these also pin that the dialog counts what a publish
sends and names what it leaves out. The end-to-end behaviour is in tests/test_browser_course_publish.py.
"""

from __future__ import annotations

import os

from condorhub.courses.handlers import PUBLISH_SCOPE, publisher_role, server_token_scopes
from condorhub.lab.courses.publish import summarize
from condorhub.schema import CourseSettings

LIMITS = {"max_size": 2**20, "max_files": 3, "timeout": 60}


def course(slug: str, instructors: str, repository: str | None = None) -> CourseSettings:
    return CourseSettings(
        slug=slug, title=slug, students_group="students", instructors_group=instructors, repository=repository
    )


def test_the_publish_scope_goes_to_instructors_of_courses_the_hub_keeps_only():
    role = publisher_role([course("a", "instructors"), course("b", "guests"), course("c", "tutors", "https://x/c.git")])
    assert role is not None and role["scopes"] == [PUBLISH_SCOPE]
    assert role["groups"] == ["guests", "instructors"]  # tutors publish by pushing to their repository
    assert publisher_role([course("c", "tutors", "https://x/c.git")]) is None


def test_server_tokens_keep_jupyterhubs_default_scopes_and_gain_the_publish_scope():
    assert server_token_scopes([]) == ["users:activity!user", "access:servers!server", PUBLISH_SCOPE]
    assert server_token_scopes(["inherit"]) == ["inherit", PUBLISH_SCOPE]
    assert server_token_scopes([PUBLISH_SCOPE]) == [PUBLISH_SCOPE]


def test_the_preview_counts_files_names_the_biggest_and_what_is_left_out(tmp_path):
    (tmp_path / "lesson.py").write_text("x" * 100)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.csv").write_text("y" * 500)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n")
    (tmp_path / "__pycache__").mkdir()
    os.symlink("/etc/shadow", tmp_path / "shadow")
    preview = summarize(tmp_path, LIMITS)
    assert (preview["files"], preview["bytes"], preview["problem"]) == (2, 600, None)
    assert [f["path"] for f in preview["biggest"]] == ["data/big.csv", "lesson.py"]
    assert preview["skipped"] == ["shadow (link)"]
    assert sorted(preview["excluded"]) == [".git/", "__pycache__/"]


def test_the_preview_says_why_a_folder_cannot_be_published(tmp_path):
    with open(tmp_path / "data.bin", "wb") as fh:  # sparse: 2 MiB to count, none to read
        fh.truncate(2 * 2**20)
    assert "holds 2 MiB, more than the 1 MiB a publish may contain" in summarize(tmp_path, LIMITS)["problem"]
    for i in range(4):
        (tmp_path / f"f{i}").write_text("")
    assert "more than the 3 a publish may contain" in summarize(tmp_path, {**LIMITS, "max_size": 2**30})["problem"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert summarize(empty, LIMITS)["problem"] == "the folder holds no file to publish"
