"""Course links (nbgitpuller's /git-pull) cannot plant files outside ~/courses (issue 10, item 5).

A real jupyter-server with nbgitpuller and condorhub's course extension, a real git repository whose
file would be kernel startup code, and the crafted links an attacker would send a student.
"""

from __future__ import annotations

import html
import os
import subprocess

import pytest

GIT_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}


@pytest.fixture
def jp_server_config(jp_data_dir):
    return {"ServerApp": {"jpserver_extensions": {"nbgitpuller": True, "condorhub.lab.courses.sync": True}}}


@pytest.fixture
def evil_repo(tmp_path, jp_root_dir):
    """A repository whose only file would run in every kernel if it landed in IPython's startup folder."""
    marker = tmp_path / "kernel-ran-planted-code"
    work = tmp_path / "evil"
    work.mkdir()
    (work / "00-planted.py").write_text(f"open({str(marker)!r}, 'w').write('planted')\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=work, env=GIT_ENV, check=True)
    return str(work), marker


def pull(api, repo: str, targetpath: str | None, page: bool = False):
    params = {"repo": repo, "branch": "main"}
    if targetpath is not None:
        params["targetpath"] = targetpath
    return api("GET", "git-pull" if page else "git-pull/api", params=params, timeout=60)


STARTUP = ".ipython/profile_default/startup"


@pytest.mark.parametrize(
    "targetpath",
    [
        STARTUP,  # the crafted link of the issue
        f"courses/../{STARTUP}",
        "courses",  # the courses folder itself (its own files would sit beside every course)
        None,  # no targetpath: nbgitpuller would use the repository's name, in the home
    ],
)
def test_a_crafted_link_cannot_pull_outside_the_courses_folder(api, evil_repo, jp_root_dir, targetpath):
    repo, marker = evil_repo
    for page in (True, False):  # the page the link opens, and the API it calls (which does the pull)
        reply = pull(api, repo, targetpath, page=page)
        assert reply.code == 403, reply
        text = html.unescape(reply.text)  # the page shows the message HTML-escaped
        assert "may only pull into your ~/courses/ folder" in text and "targetpath=courses/<name>" in text, text[-800:]
    assert not (jp_root_dir / ".ipython").exists()
    assert not (jp_root_dir / "evil").exists()
    assert not marker.exists()


def test_an_absolute_target_and_a_link_out_of_courses_are_refused(api, evil_repo, jp_root_dir, tmp_path):
    repo, _ = evil_repo
    startup = jp_root_dir / STARTUP
    assert pull(api, repo, str(startup)).code == 403
    # A symlink inside ~/courses pointing out (made by an earlier pull of a crafted repository, say).
    (jp_root_dir / "courses").mkdir()
    startup.mkdir(parents=True)
    os.symlink(startup, jp_root_dir / "courses" / "innocent")
    reply = pull(api, repo, "courses/innocent")
    assert reply.code == 403 and "'courses/innocent'" in html.unescape(reply.text)
    assert list(startup.iterdir()) == []


def test_a_link_into_the_courses_folder_still_pulls(api, evil_repo, jp_root_dir):
    repo, marker = evil_repo
    reply = pull(api, repo, "courses/shared-lesson")
    assert reply.code == 200 and '"phase": "finished"' in reply.text, reply
    assert (jp_root_dir / "courses" / "shared-lesson" / "00-planted.py").exists()  # a file, not startup code
    assert not marker.exists()


def test_refusal_needs_no_login_to_be_safe(jp_fetch, run, evil_repo, jp_root_dir):
    # Without the token nbgitpuller's own authentication answers (403); nothing is pulled either way.
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as err:
        run(jp_fetch("git-pull/api", params={"repo": evil_repo[0], "targetpath": STARTUP}, headers={"Authorization": ""}))
    assert err.value.code == 403
    assert not (jp_root_dir / ".ipython").exists()
