"""Handing a server's secrets to its job through a file only the user can read.

The job needs the server's API token (also its OAuth client secret) and the rest of JupyterHub's
environment. The job ad is public to every pool user, so they cannot go there (batchspawner #227).
Instead the hub writes them to ``~/.condorhub/<job-name>.env`` in the user's home, which the execute
nodes share (NFS in production, a bind mount in the test pool):

* the folder is created mode 0700 and must be owned by the user (refused if it is a symlink or someone
  else's), the file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600: no other user, and
  no pre-planted file or link, can see or redirect it;
* the writing is done **as the user**, by a short child process that drops to the user's uid/gid before
  touching the home (``subprocess`` with ``user=``/``group=``, no shell, no preexec hook). The hub's
  root is never trusted inside a directory the user controls, and it also works on NFS homes exported
  with root_squash, where root cannot write at all;
* the job's launcher reads the file and deletes it before starting the server, so the token lives on
  disk only between submission and job start; the hub deletes it itself if the job never starts.

The alternatives were worse: HTCondor's file transfer of a spooled input file needs the schedd to spool
per job (slower, and the spool is readable by the schedd's admins anyway), and an environment in the
job ad is readable by everyone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

#: Name of the per-user folder in the home.
SECRET_DIR = ".condorhub"

# Run as the user with `python -I -S` (isolated, no site): fast (~20 ms) and unaffected by anything the
# user controls (PYTHONPATH, usercustomize). Exit codes: 0 ok, 3 unsafe folder, 4 file exists.
# Modes: write/remove one file ~/.condorhub/<name>; writedir/removedir a private folder ~/.condorhub/<name>/
# of files (stdin: JSON {relative path: text}, at most one sub-folder deep), replaced as a whole.
_HELPER = r"""
import json, os, shutil, stat, sys
mode, home, name = sys.argv[1], sys.argv[2], sys.argv[3]
folder = os.path.join(home, ".condorhub")
if mode in ("write", "writedir"):
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
try:
    st = os.lstat(folder)
except FileNotFoundError:
    sys.exit(0 if mode in ("remove", "removedir") else 3)
if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
    print(f"{folder} is not a folder owned by you (a symlink or someone else's)", file=sys.stderr)
    sys.exit(3)
if stat.S_IMODE(st.st_mode) & 0o077:
    os.chmod(folder, 0o700)
path = os.path.join(folder, name)
if mode in ("writedir", "removedir"):
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    if mode == "removedir":
        sys.exit(0)
    os.mkdir(path, 0o700)
    for rel, text in json.loads(sys.stdin.buffer.read()).items():
        parts = rel.split("/")
        if len(parts) > 2 or any(p in ("", ".", "..") for p in parts):
            print(f"bad file name {rel!r}", file=sys.stderr)
            sys.exit(3)
        if len(parts) == 2 and not os.path.isdir(os.path.join(path, parts[0])):
            os.mkdir(os.path.join(path, parts[0]), 0o700)
        fd = os.open(os.path.join(path, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    sys.exit(0)
if mode == "remove":
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sys.exit(0)
data = sys.stdin.buffer.read()
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
except FileExistsError:
    print(f"{path} exists already", file=sys.stderr)
    sys.exit(4)
with os.fdopen(fd, "wb") as fh:
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())
"""


class SecretFileError(RuntimeError):
    """The secrets file could not be written safely; the message says where and why."""


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    home: str


def secret_path(home: str, name: str) -> str:
    return os.path.join(home, SECRET_DIR, name)


def _run_as(account: Account, mode: str, name: str, data: bytes | None, timeout: float) -> None:
    if "/" in name or name.startswith("."):
        raise SecretFileError(f"invalid secrets file name {name!r}")
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _HELPER, mode, account.home, name],
            input=data or b"",
            capture_output=True,
            user=account.uid,
            group=account.gid,
            extra_groups=[],
            umask=0o077,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            timeout=timeout,
        )
    except PermissionError:
        raise SecretFileError(
            "the hub cannot act as the user to write the server's secrets file; it must run as root"
        ) from None
    except subprocess.TimeoutExpired:
        raise SecretFileError(
            f"writing {secret_path(account.home, name)} took longer than {timeout:g} s (is the home's file "
            "server answering?)"
        ) from None
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SecretFileError(
            f"cannot {mode} the server's secrets file in {account.home}/{SECRET_DIR}: "
            f"{detail[-1] if detail else f'exit code {proc.returncode}'}"
        )


def write_secret_file(account: Account, name: str, secrets: dict, timeout: float = 20) -> str:
    """Write ``secrets`` (JSON) to ``~/.condorhub/<name>`` as the user, mode 0600, never overwriting.

    Blocking (a child process and possibly NFS): call it in an executor. Returns the path.
    """
    _run_as(account, "write", name, json.dumps(secrets).encode(), timeout)
    return secret_path(account.home, name)


def write_private_folder(account: Account, name: str, files: dict[str, str], timeout: float = 20) -> str:
    """Write ``~/.condorhub/<name>/`` (0700) with ``files`` (0600) as the user, replacing any earlier one.

    Blocking: call it in an executor. Returns the folder's path.
    """
    _run_as(account, "writedir", name, json.dumps(files).encode(), timeout)
    return secret_path(account.home, name)


def remove_private_folder(account: Account, name: str, timeout: float = 20) -> None:
    """Delete ``~/.condorhub/<name>/`` as the user if it is there."""
    _run_as(account, "removedir", name, None, timeout)


def remove_secret_file(account: Account, name: str, timeout: float = 20) -> None:
    """Delete ``~/.condorhub/<name>`` as the user if it is still there (the job never started)."""
    _run_as(account, "remove", name, None, timeout)


def read_own_file_tail(path: str, uid: int, limit: int = 2000) -> str:
    """The end of a file in the user's home, for error messages, only if it is the user's own regular file.

    The hub reads it as root, so a symlink (or hard link) to a file the user may not read must not be
    followed: O_NOFOLLOW, then the owner and type are checked on the opened file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        st = os.fstat(fd)
        import stat as _stat

        if not _stat.S_ISREG(st.st_mode) or st.st_uid != uid or st.st_nlink != 1:
            return ""
        size = st.st_size
        os.lseek(fd, max(size - limit, 0), os.SEEK_SET)
        return os.read(fd, limit).decode(errors="replace")
    finally:
        os.close(fd)
