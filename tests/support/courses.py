"""Helpers of the course tests: the course service account, git as an outsider sees it, a process that
takes over a publish's reader as the instructor would."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

ACCOUNT = "condorhub-courses"


def ensure_course_account(name: str = ACCOUNT) -> pwd.struct_passwd:
    """The unprivileged account that owns course repositories, created as the jupyterhub role does."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            check=True,
        )
        return pwd.getpwnam(name)


def git_out(repo: Path, *args: str) -> str:
    """git on a course repository, read-only, without any config but the system's safe.directory."""
    result = subprocess.run(
        ["git", f"--git-dir={repo}", *args], capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def crafted_stream(entries: list[tuple[str, bytes]], end: bool = True) -> bytes:
    """A publish stream (condorhub.courses.stream) as an attacker writes it."""
    out = b"condorhub-publish 1\n"
    for path, data in entries:
        out += b"F %d - %s\n" % (len(data), json.dumps(path).encode()) + data
    if end:
        out += b"E %d %d\n" % (len(entries), sum(len(d) for _, d in entries))
    return out


# Runs as the instructor's uid: waits for the hub's reader process of a publish (same uid, so it may
# signal it and take its file descriptors), stops it before it has written anything, then either writes
# ``stream`` into the reader's stdout pipe (the writer's stdin) and kills it, or leaves it stopped.
TAKEOVER = textwrap.dedent(
    r"""
    import ctypes, json, os, re, signal, sys, time
    stream = bytes.fromhex(sys.argv[1]); mode = sys.argv[2]; report = sys.argv[3]
    me = os.getuid(); deadline = time.monotonic() + 60
    def reader_pids():
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    argv = open(f"/proc/{name}/cmdline", "rb").read().split(b"\0")
                    if os.stat(f"/proc/{name}").st_uid == me and b"condorhub.courses.reader" in argv:
                        yield int(name)
                except OSError:
                    pass
    open(report + ".ready", "w").close()
    while time.monotonic() < deadline:
        for pid in reader_pids():
            os.kill(pid, signal.SIGSTOP)
            io = open(f"/proc/{pid}/io", "rb").read()
            written = int(re.search(rb"wchar: (\d+)", io).group(1))
            if mode == "inject":
                # The pipe belongs to root (mode 0600), so /proc/<pid>/fd/1 cannot be opened; but the
                # reader is this uid's process: take a copy of its fd 1 (pidfd_getfd, ptrace rights).
                libc = ctypes.CDLL(None, use_errno=True)
                fd = libc.syscall(438, os.pidfd_open(pid), 1, 0)  # SYS_pidfd_getfd, the same on every arch
                if fd < 0:
                    sys.exit(f"pidfd_getfd: {os.strerror(ctypes.get_errno())}")
                os.write(fd, stream)
                os.close(fd)
                time.sleep(1)
                os.kill(pid, signal.SIGKILL)
            with open(report, "w") as fh:
                json.dump({"pid": pid, "written_before": written, "uid": me}, fh)
            sys.exit(0)
    sys.exit("no reader process appeared")
    """
)


def start_takeover(uid: int, gid: int, stream: bytes, mode: str, report: Path) -> subprocess.Popen:
    """Start :data:`TAKEOVER` as ``uid``; returns once it watches for the reader."""
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", TAKEOVER, stream.hex(), mode, str(report)],
        user=uid, group=gid, extra_groups=[gid], cwd="/",
    )
    ready = Path(f"{report}.ready")
    for _ in range(200):
        if ready.exists():
            return proc
        if proc.poll() is not None:
            raise RuntimeError("the take-over process exited early")
        import time

        time.sleep(0.05)
    raise RuntimeError("the take-over process did not start")


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class SilentGitDaemon:
    """Listens on a port, accepts every connection and never says a word (a git:// server that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self):
        for conn in self.connections:
            conn.close()
        self.sock.close()
