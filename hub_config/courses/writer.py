"""The writing side of a publish; runs as the course service account (never as root).

    python -I -m condorhub.courses.writer <repository> <branch> <author> <message> <max_bytes> <max_files>

Reads a :mod:`condorhub.courses.stream` on stdin and turns it into the next commit of the bare course
repository with ``git fast-import``: no work tree, no checkout, no index, so nothing in the material is
ever interpreted by git (hooks and fsmonitor are off besides, and no system or global git config is
read). The branch only moves at the very end, with a compare-and-swap ``update-ref``: a refused, cut off
or killed publish leaves the course as it was. Prints a JSON result on stdout, or ``{"error": ...}`` on
stderr.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from condorhub.courses import stream

ZERO = "0" * 40
# Every git run: no config but the repository's own (which only this account writes), hooks and
# fsmonitor off whatever that config says, no prompts.
GIT_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0",
    "LANG": "C.UTF-8",
}
GIT_SAFETY = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "gc.auto=0"]


class WriteError(Exception):
    pass


def git(repo: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(
        ["git", *GIT_SAFETY, f"--git-dir={repo}", *args], env=GIT_ENV, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise WriteError(f"git {args[0]} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip() if result.returncode == 0 else ""


def quote_path(path: str) -> bytes:
    """A path as fast-import reads it: C-style quoted, so no name can end the command early."""
    out = bytearray(b'"')
    for byte in path.encode("utf-8"):
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b'"')


def person(name: str) -> bytes:
    clean = re.sub(r"[<>\n\r\x00]", "", name)[:100] or "unknown"
    return f"{clean} <{clean}@condorhub>".encode()


def ensure_repository(repo: Path, branch: str) -> None:
    if not (repo / "HEAD").exists():
        subprocess.run(
            ["git", *GIT_SAFETY, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(repo)],
            env=GIT_ENV,
            capture_output=True,
            text=True,
            check=True,
        )


def import_stream(repo: Path, branch: str, author: str, message: str, reader: stream.StreamReader) -> dict:
    parent = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False) or None
    pending = f"refs/condorhub/pending-{secrets.token_hex(6)}"
    fast_import = subprocess.Popen(
        ["git", *GIT_SAFETY, f"--git-dir={repo}", "fast-import", "--quiet", "--done"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=GIT_ENV,
    )
    feed = fast_import.stdin
    assert feed is not None and fast_import.stderr is not None  # both are PIPEs
    entries: list[tuple[int, stream.Entry]] = []
    try:
        while (entry := reader.next_entry()) is not None:
            mark = len(entries) + 1
            feed.write(b"blob\nmark :%d\ndata %d\n" % (mark, entry.size))
            while data := reader.read_data():
                feed.write(data)
            feed.write(b"\n")
            entries.append((mark, entry))
        now = int(time.time())
        text = message.encode()
        feed.write(b"commit %s\n" % pending.encode())
        feed.write(b"author %s %d +0000\n" % (person(author), now))
        feed.write(b"committer %s %d +0000\n" % (person(author), now))
        feed.write(b"data %d\n%s\n" % (len(text), text))
        if parent:
            feed.write(b"from %s\n" % parent.encode())
        feed.write(b"deleteall\n")  # the snapshot replaces the tree: files the instructor removed go
        for mark, entry in entries:
            feed.write(b"M %s :%d %s\n" % (b"100755" if entry.executable else b"100644", mark, quote_path(entry.path)))
        feed.write(b"\ndone\n")
        feed.close()
    except BaseException:
        # No `done`: fast-import stops without touching any ref.
        fast_import.kill()
        fast_import.wait()
        raise
    errors = fast_import.stderr.read()
    fast_import.wait()
    if fast_import.returncode != 0:
        raise WriteError(f"git fast-import failed: {errors.decode(errors='replace').strip()[-500:]}")
    try:
        commit = git(repo, "rev-parse", pending)
        if parent and git(repo, "rev-parse", f"{commit}^{{tree}}") == git(repo, "rev-parse", f"{parent}^{{tree}}"):
            return {"commit": parent, "changed": False, "files": len(entries)}
        # Compare-and-swap: refused if the branch moved since this publish read it.
        git(repo, "update-ref", "-m", "condorhub publish", f"refs/heads/{branch}", commit, parent or ZERO)
        return {"commit": commit, "changed": True, "files": len(entries)}
    finally:
        git(repo, "update-ref", "-d", pending, check=False)


def remove_new_packs(repo: Path, before: set[str]) -> None:
    """Drop the packs a failed import left (fast-import keeps what it wrote when it stops early)."""
    pack_dir = repo / "objects" / "pack"
    try:
        for name in set(os.listdir(pack_dir)) - before if pack_dir.is_dir() else ():
            os.unlink(pack_dir / name)
        for crash in repo.glob("fast_import_crash_*"):
            crash.unlink(missing_ok=True)
    except OSError:
        pass  # the error that ended the publish is the one to report


def main(argv: list[str]) -> int:
    repo, branch, author, message = Path(argv[0]), argv[1], argv[2], argv[3]
    limits = stream.Limits(max_bytes=int(argv[4]), max_files=int(argv[5]))
    os.umask(0o022)  # students read the repository with their own uid
    before: set[str] = set()
    try:
        ensure_repository(repo, branch)
        pack_dir = repo / "objects" / "pack"
        before = set(os.listdir(pack_dir)) if pack_dir.is_dir() else set()
        result = import_stream(repo, branch, author, message, stream.StreamReader(sys.stdin.buffer, limits))
    except (stream.StreamRefused, WriteError, OSError, subprocess.CalledProcessError) as err:
        remove_new_packs(repo, before)
        detail = err.stderr.strip() if isinstance(err, subprocess.CalledProcessError) else str(err)
        # "refused": the stream broke a rule (what a taken-over reader sends); an incomplete one is not.
        refused = isinstance(err, stream.StreamRefused) and not isinstance(err, stream.StreamIncomplete)
        print(json.dumps({"error": detail, "refused": refused}), file=sys.stderr)
        return 2 if isinstance(err, stream.StreamRefused) else 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
