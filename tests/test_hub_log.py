"""The hub's log is not world-readable: the demo's /var/log/condorhub/hub.log and the start scripts'
output (:mod:`devstack.logfile`) are 0640 root:adm, also when an older run left them 0644. Each
test reads the file as another user (``nobody``) for real; a 0644 file beside it shows that user could."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.logfile import open_log
from devstack.run import open_hub_log
from tests.support.scratch import scratch_dir

NOBODY = "nobody"


@pytest.fixture
def log_dir():
    if os.geteuid() != 0:
        pytest.fail("these tests change log owners and read as another user: run them as root")
    path = scratch_dir("condorhub-logs-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def read_as(user: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", "cat", str(path)], capture_output=True, text=True)


def assert_private(path: Path) -> None:
    info = path.stat()
    assert (oct(info.st_mode & 0o777), info.st_uid, info.st_gid) == ("0o640", 0, grp.getgrnam("adm").gr_gid)
    # The control: a world-readable file next to it is readable by that user (the folder lets them in).
    control = path.parent / "control.txt"
    control.write_text("public\n")
    control.chmod(0o644)
    assert read_as(NOBODY, control).stdout == "public\n"
    denied = read_as(NOBODY, path)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied.stdout[:200]


def test_the_demos_hub_log_is_created_0640(log_dir):
    with open_hub_log(log_dir / "condorhub") as log:
        log.write(b"alice's server at http://127.0.0.1:40001/user/alice/ token=...\n")
    assert_private(log_dir / "condorhub" / "hub.log")


def test_a_world_readable_log_left_by_an_older_demo_is_made_private(log_dir):
    old = log_dir / "hub.log"
    old.write_text("yesterday's log\n")
    old.chmod(0o644)
    os.chown(old, 65534, 65534)  # even one that someone else owns
    assert read_as(NOBODY, old).returncode == 0  # the attack, before: any user reads it
    with open_hub_log(log_dir) as log:
        log.write(b"today\n")
    assert old.read_text() == "yesterday's log\ntoday\n"  # appended, nothing lost
    assert_private(old)


def test_a_start_scripts_output_is_truncated_and_made_private(log_dir):
    old = log_dir / "40-condorhub-hub.log"
    old.write_text("last run\n")
    old.chmod(0o666)
    with open_log(old, append=False) as out:
        out.write(b"this run\n")
    assert old.read_text() == "this run\n"
    assert_private(old)


def test_a_planted_link_is_refused(log_dir):
    target = log_dir / "elsewhere.txt"
    target.write_text("not a log\n")
    (log_dir / "hub.log").symlink_to(target)
    with pytest.raises(OSError, match="symbolic link; remove it"):
        open_hub_log(log_dir)
    os.link(target, log_dir / "second-name.log")
    with pytest.raises(OSError, match="not a plain file with a single name"):
        open_log(log_dir / "second-name.log", append=False)
    assert target.read_text() == "not a log\n"  # neither written nor truncated
