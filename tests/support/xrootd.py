"""A throw-away XRootD server (Debian's xrootd-server) on loopback, serving one folder read-only.

xrootd refuses to run as root, so under root it drops to the `xrootd` system user the Debian package
creates (the exported folder must be world-readable). It listens on a free port and accepts clients from
localhost only (xrd.allow).
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .ports import free_port

XROOTD = "/usr/bin/xrootd"


class XRootDServerError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even by SIGKILL or a crash, so no server
    outlives its test run. Runs after the switch to the xrootd user (a uid change clears this setting)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class XRootDServer:
    def __init__(self, export: Path):
        self.export = Path(export).resolve()
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None

    def url(self, path: Path | str) -> str:
        """root:// URL of a file under the exported folder (absolute path after the double slash)."""
        path = Path(path).resolve()
        path.relative_to(self.export)  # only files we serve
        return f"root://127.0.0.1:{self.port}/{path}"

    def start(self, timeout: float = 20) -> "XRootDServer":
        if not os.path.exists(XROOTD):
            raise XRootDServerError(
                f"{XROOTD} not found: install Debian's xrootd-server (apt-get install xrootd-server; "
                "./setup.sh test does it)"
            )
        self.workdir = Path(tempfile.mkdtemp(prefix="condorhub-xrootd-", dir="/var/tmp"))
        self.workdir.chmod(0o777)  # the server writes its admin files here as the xrootd user
        self.port = free_port()
        config = self.workdir / "xrootd.cfg"
        config.write_text(
            f"all.export {self.export} r/o\n"
            f"all.adminpath {self.workdir}\n"
            f"all.pidpath {self.workdir}\n"
            "xrd.allow host localhost\n"
        )
        config.chmod(0o644)
        log = self.workdir / "xrootd.log"
        user = {}
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("xrootd")
            except KeyError:
                account = pwd.getpwnam("nobody")
            user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen(
            [XROOTD, "-I", "v4", "-p", str(self.port), "-c", str(config), "-l", str(log), "-n", "condorhub-test"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.workdir, preexec_fn=_die_with_parent, **user,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise XRootDServerError(f"xrootd exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise XRootDServerError(f"xrootd did not listen on port {self.port} within {timeout} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        logs = sorted(self.workdir.rglob("xrootd.log*")) if self.workdir else []
        return logs[-1].read_text(errors="replace")[-2000:] if logs else "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
