"""The Jupyter server's private directory: TensorBoard sockets, the kernels' TMPDIR, the %tensorboard launcher.

Everything TensorBoard needs to find lives here instead of in shared places another user can write:

* ``sockets/``   the Unix sockets TensorBoard listens on (no TCP port: see serve.py). Nobody but the user can
                 create an entry in a 0700 directory, so a socket found there is the user's own.
* ``tmp/``       the TMPDIR of the server and so of every kernel and terminal. TensorBoard's info files
                 (tensorboard.manager: ``tempfile.gettempdir()/.tensorboard-info``, which is world-writable
                 ``/tmp/.tensorboard-info`` by default) land here, so %tensorboard never "reuses" an
                 entry another user planted with the victim's pid and the attacker's port.
* ``tensorboard`` the TENSORBOARD_BINARY of %tensorboard: TensorBoard on a socket in ``sockets/`` (in the
                 Jupyter runtime folder instead where this file system is mounted noexec).

The directory is made by mkdtemp (0700, a fresh random name, created atomically, so nothing can be
planted in advance) under the server's TMPDIR: ``/tmp`` on the login node, the job's scratch directory on
an HTCondor node. It is removed when the server stops; one a killed server left behind goes at the next
start (its name holds the server's pid).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
from pathlib import Path

#: Environment variable that tells the %tensorboard launcher (in a kernel) where the sockets go.
ENV_DIR = "CONDORHUB_LAB_PRIVATE_DIR"
PREFIX = "condorhub-lab-"
#: Socket names: ``instance-<id>`` (the Lab's TensorBoards), ``port-<n>`` (%tensorboard's; n stands in for
#: the TCP port TensorBoard's info file and TENSORBOARD_PROXY_URL expect).
SOCKET_NAME = re.compile(r"^(instance-[0-9a-f]{1,32}|port-[0-9]{1,5})$")


#: Longest TMPDIR the socket paths fit under (sun_path: 108 bytes with the final NUL).
_MAX_BASE = 107 - len(f"/{PREFIX}4194304-xxxxxxxx/sockets/instance-{'f' * 8}.sock")


class NotPrivate(PermissionError):
    """A path that should be the user's own is not (another owner, group/other access, a symlink)."""


def check_private_dir(path: Path) -> Path:
    """``path`` is a real directory of this user that nobody else may enter; else NotPrivate."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise NotPrivate(f"{path} does not exist (the Jupyter server makes it at start; restart the server)") from None
    if not stat.S_ISDIR(st.st_mode):
        raise NotPrivate(f"{path} is not a directory (a symlink?); refusing to use it for TensorBoard")
    if st.st_uid != os.getuid():
        raise NotPrivate(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); refusing to use it")
    if st.st_mode & 0o077:
        raise NotPrivate(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}); it must be 0700")
    return path


def check_own_socket(path: Path) -> Path:
    """``path`` is a Unix socket of this user in a private directory: safe to connect to. Else NotPrivate
    (or FileNotFoundError: nothing listens there)."""
    check_private_dir(path.parent)
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode):
        raise NotPrivate(f"{path} is not a socket")
    if st.st_uid != os.getuid():
        raise NotPrivate(f"the socket {path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: a reused pid, but not ours to judge
    return True


def remove_stale(base: Path) -> None:
    """Private directories of this user's servers that died without cleaning up (SIGKILL, OOM)."""
    uid = os.getuid()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return
    for entry in entries:
        match = re.fullmatch(re.escape(PREFIX) + r"(\d+)-\w+", entry.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not _alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)


class PrivateDir:
    """One server's private directory (see the module's docstring)."""

    def __init__(self, path: Path):
        self.path = check_private_dir(path)
        self.sockets = path / "sockets"
        self.tmp = path / "tmp"
        self.launcher: Path | None = None  # write_launcher

    @classmethod
    def create(cls, base: str | None = None) -> PrivateDir:
        base = base or tempfile.gettempdir()
        # A Unix socket's path may have at most 107 bytes; the names below add about 60 to the base.
        if len(os.fsencode(base)) > _MAX_BASE:
            base = "/tmp"
        remove_stale(Path(base))
        try:
            path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
        except OSError as err:
            raise OSError(
                f"cannot make condorhub's private folder in {base} ({err}): set TMPDIR to a writable folder"
            ) from None
        private = cls(path)
        for sub in (private.sockets, private.tmp):
            sub.mkdir(mode=0o700)
        return private

    def write_launcher(self, fallback: Path) -> Path | None:
        """The %tensorboard launcher (TENSORBOARD_BINARY) here, or in ``fallback`` (a folder of the user's,
        made 0700) where this file system is mounted noexec, as some sites mount /tmp; None if neither runs.

        A script, because TENSORBOARD_BINARY is a single path that tensorboard.manager runs with the
        magic's arguments. The same Python as the server: the kernel's PATH may have no TensorBoard."""
        script = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m condorhub.lab.tensorboard.magic "$@"\n'
        for folder in (self.path, fallback):
            if folder is not self.path:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                check_private_dir(folder)
            if os.statvfs(folder).f_flag & os.ST_NOEXEC:
                continue
            launcher = folder / "tensorboard" if folder is self.path else folder / f"tensorboard-{self.path.name}"
            launcher.write_text(script)
            launcher.chmod(0o700)
            self.launcher = launcher
            return launcher
        return None

    def socket(self, name: str) -> Path:
        if not SOCKET_NAME.match(name):
            raise ValueError(f"not a TensorBoard socket name: {name!r}")
        return self.sockets / f"{name}.sock"

    def info_dir(self) -> Path:
        """Where TensorBoard writes its info files for processes with TMPDIR=tmp/ (tensorboard.manager)."""
        return self.tmp / ".tensorboard-info"

    def remove(self) -> None:
        if self.launcher and self.launcher.parent != self.path:
            self.launcher.unlink(missing_ok=True)
        shutil.rmtree(self.path, ignore_errors=True)
