"""A course's published versions: the commits of its branch, read by git running as the course service account.

The hub runs as root and a course repository's content comes from instructors (a publish, or a push), so
root never runs git on it: :func:`read_versions` starts git as ``course_publishing.account``, which owns the
repositories and already writes them, with the same hardening as the writer (no system or global config,
hooks and fsmonitor off). Root itself only ``lstat``\\ s the branch's ref files, which reads no content, to
know when the history changed: :class:`CourseHistory` runs git again only then, so a home page seen by a
hundred students costs a few ``lstat`` calls, not a hundred git runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from condorhub.schema import CourseSettings

from .publish import ServiceAccount, repository_path
from .writer import GIT_ENV, GIT_SAFETY

# The history shown on a course page: enough for a semester of weekly publishes and then some.
MAX_VERSIONS = 100
# git log on the hub's own disk takes milliseconds; a repository that takes longer is broken, not big.
GIT_TIMEOUT = 10.0
# One record per commit: fields split by US, records started by RS (control characters no hash, date or
# publish message holds; a pushed message that does only garbles its own entry, which is then left out).
_FORMAT = "%x1e%H%x1f%h%x1f%ct%x1f%an%x1f%s"
_FILES_CHANGED = re.compile(rb"(\d+) files? changed")


class HistoryError(Exception):
    """git could not read the course's history; the message says what git said."""


@dataclass(frozen=True)
class Version:
    """One published version of a course (a commit of its branch)."""

    commit: str
    short: str
    date: datetime
    author: str
    message: str
    files_changed: int


@dataclass
class History:
    """What a course page shows of a course's versions: newest first; ``error`` when git failed."""

    versions: list[Version] = field(default_factory=list)
    error: str = ""

    @property
    def latest(self) -> Version | None:
        return self.versions[0] if self.versions else None


def parse_log(output: bytes) -> list[Version]:
    """``git log --format=<_FORMAT> --shortstat`` output → versions, newest first."""
    versions = []
    for record in output.split(b"\x1e")[1:]:
        header, _, stat = record.partition(b"\n")
        fields = header.decode("utf-8", errors="replace").split("\x1f")
        if len(fields) != 5:
            continue
        commit, short, timestamp, author, message = fields
        changed = _FILES_CHANGED.search(stat)
        versions.append(
            Version(
                commit=commit,
                short=short,
                date=datetime.fromtimestamp(int(timestamp), UTC),
                author=author,
                message=message,
                files_changed=int(changed.group(1)) if changed else 0,
            )
        )
    return versions


async def read_versions(
    repo: Path, branch: str, account: ServiceAccount, limit: int = MAX_VERSIONS, timeout: float = GIT_TIMEOUT
) -> list[Version]:
    """The newest ``limit`` commits of ``branch`` in the bare repository ``repo``, as ``account`` reads them.

    An empty repository folder (nothing published yet) or a branch that does not exist yet is no history,
    not an error.
    """
    if not (repo / "HEAD").exists():
        return []
    argv = [
        "git",
        *GIT_SAFETY,
        f"--git-dir={repo}",
        "log",
        f"--max-count={limit}",
        f"--format={_FORMAT}",
        "--shortstat",
        "--no-color",
        f"refs/heads/{branch}",
        "--",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
        env=GIT_ENV,
        process_group=0,
        user=account.uid,
        group=account.gid,
        extra_groups=[account.gid],
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        raise
    if proc.returncode != 0:
        text = err.decode(errors="replace").strip()
        if "unknown revision" in text or "bad revision" in text or "does not have any commits" in text:
            return []  # the repository exists, the branch not yet
        raise HistoryError(f"git log as {account.name} failed: {text[-300:] or f'exit {proc.returncode}'}")
    return parse_log(out)


def _ref_key(repo: Path, branch: str) -> tuple:
    """Changes whenever the branch moves: the ref's loose file or the packed refs (metadata only)."""
    key: list[tuple[int, int, int] | None] = []
    for path in (repo / "HEAD", repo / "refs" / "heads" / branch, repo / "packed-refs"):
        try:
            st = os.lstat(path)
        except OSError:
            key.append(None)
        else:
            key.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(key)


class CourseHistory:
    """Versions of the hub-managed courses, read again only when a course's branch has moved."""

    def __init__(self, courses_dir: Path, account: ServiceAccount | None):
        self.courses_dir = courses_dir
        self.account = account
        self._cache: dict[str, tuple[tuple, History]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def history(self, course: CourseSettings) -> History:
        """The course's versions; an empty history for a course whose material lives elsewhere."""
        if course.repository or self.account is None:
            return History()
        repo = repository_path(self.courses_dir, course)
        lock = self._locks.setdefault(course.slug, asyncio.Lock())
        async with lock:  # a class opening the home page at once runs git once, not once each
            key = _ref_key(repo, course.branch)
            cached = self._cache.get(course.slug)
            if cached and cached[0] == key:
                return cached[1]
            try:
                result = History(await read_versions(repo, course.branch, self.account))
            except (HistoryError, OSError, TimeoutError) as err:
                # Not cached: the next page load tries again.
                return History(error=str(err) or type(err).__name__)
            self._cache[course.slug] = (key, result)
            return result
