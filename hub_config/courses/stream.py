"""The publish stream: what the instructor-side reader sends the service-account writer.

A deliberately tiny format instead of tar, so the writer's parser has nothing to interpret but regular
files: no links, devices, owners, sparse maps or long-name extensions exist in it.

    condorhub-publish 1\\n
    F <size> <x|-> <path as JSON string>\\n  followed by <size> bytes   (one per file)
    E <files> <bytes>\\n                                              (end: the reader finished)

The stream comes from a process running as the instructor, which any other process of the instructor
can take over (ptrace, /proc/<pid>/fd/1), so the writer treats it as hostile: :func:`check_path` refuses
every path git or a student's checkout could treat specially, and :class:`Limits` are enforced while
reading, before anything is stored. A stream without its ``E`` record (reader killed, failed or cut off)
publishes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO

MAGIC = b"condorhub-publish 1\n"
MAX_HEADER = 8192  # bytes of one header line; a longer one is refused, never buffered
MAX_PATH = 4096
# Names git or a checkout treats specially: the repository itself (and its NTFS short name, which git
# also refuses), and submodule definitions (a student's clone would follow their URLs).
FORBIDDEN_NAMES = {".git", "git~1", ".gitmodules"}


class StreamRefused(Exception):
    """The stream is malformed or breaks a rule or limit; the message says which."""


class StreamIncomplete(StreamRefused):
    """The stream stopped early: the reading side failed, was stopped, or sent nothing."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_files: int


def check_path(path: str) -> str:
    """``path`` if it is a plain relative path git may store; raises StreamRefused naming the problem."""
    if not path or len(path) > MAX_PATH:
        raise StreamRefused(f"path of {len(path)} characters (1 to {MAX_PATH} allowed)")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise StreamRefused(f"{path!r}: names must be valid UTF-8") from None
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in path):
        raise StreamRefused(f"{path!r}: control characters are not allowed in names")
    if path.startswith("/") or "\\" in path:
        raise StreamRefused(f"{path!r}: only relative paths with / as separator are allowed")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise StreamRefused(f"{path!r}: empty, `.` and `..` components are not allowed")
        # git on case-insensitive file systems (and core.protectNTFS) treats .GIT and ".git " alike.
        if part.lower().rstrip(". ") in FORBIDDEN_NAMES:
            raise StreamRefused(f"{path!r}: a {part!r} component is not course material and is refused")
    return str(PurePosixPath(path))


def write_header(out: BinaryIO) -> None:
    out.write(MAGIC)


def write_file_header(out: BinaryIO, path: str, size: int, executable: bool) -> None:
    out.write(b"F %d %s %s\n" % (size, b"x" if executable else b"-", json.dumps(path).encode()))


def write_end(out: BinaryIO, files: int, total: int) -> None:
    out.write(b"E %d %d\n" % (files, total))


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    executable: bool


@dataclass
class StreamReader:
    """Parses a stream incrementally, enforcing paths and limits as it goes.

    Use :meth:`next_entry`; after each entry the caller must consume exactly ``entry.size`` bytes with
    :meth:`read_data`. :meth:`next_entry` returns None at a valid end record.
    """

    source: BinaryIO
    limits: Limits
    files: int = 0
    total: int = 0
    _paths: set[str] = field(default_factory=set)
    _dirs: set[str] = field(default_factory=set)
    _started: bool = False
    _remaining: int = 0

    def _line(self) -> bytes:
        line = self.source.readline(MAX_HEADER + 1)
        if not line:
            raise StreamIncomplete("the stream ended before its end record: the reading side failed or was stopped")
        if len(line) > MAX_HEADER or not line.endswith(b"\n"):
            raise StreamRefused("malformed stream: a header line is too long or cut off")
        return line[:-1]

    def next_entry(self) -> Entry | None:
        if self._remaining:
            raise RuntimeError("read the previous entry's data first")
        if not self._started:
            magic = self.source.read(len(MAGIC))
            if not magic:
                raise StreamIncomplete("the reading side sent nothing")
            if magic != MAGIC:
                raise StreamRefused("not a condorhub publish stream")
            self._started = True
        line = self._line()
        kind, _, rest = line.partition(b" ")
        if kind == b"E":
            try:
                files, total = (int(x) for x in rest.split(b" "))
            except ValueError:
                raise StreamRefused("malformed end record") from None
            if (files, total) != (self.files, self.total):
                raise StreamRefused(
                    f"the end record counts {files} files / {total} bytes, the stream had {self.files} / {self.total}"
                )
            if self.source.read(1):
                raise StreamRefused("data after the end record")
            return None
        if kind != b"F":
            raise StreamRefused(f"malformed stream: unknown record {kind[:10]!r}")
        try:
            size_text, mode, path_json = rest.split(b" ", 2)
            size = int(size_text)
            path = json.loads(path_json)
        except ValueError:
            raise StreamRefused("malformed file record") from None
        if not isinstance(path, str) or size < 0 or mode not in (b"x", b"-"):
            raise StreamRefused("malformed file record")
        path = check_path(path)
        self._claim(path)
        self.files += 1
        self.total += size
        if self.files > self.limits.max_files:
            raise StreamRefused(f"more than {self.limits.max_files} files (course_publishing.max_files)")
        if self.total > self.limits.max_bytes:
            raise StreamRefused(f"more than {self.limits.max_bytes} bytes in total (course_publishing.max_size)")
        self._remaining = size
        return Entry(path, size, mode == b"x")

    def _claim(self, path: str) -> None:
        # One entry per path, and no path that is both a file and a folder of other files.
        if path in self._paths or path in self._dirs:
            raise StreamRefused(f"{path!r} appears twice, or both as a file and a folder")
        parents = [str(p) for p in PurePosixPath(path).parents][:-1]
        if any(p in self._paths for p in parents):
            raise StreamRefused(f"{path!r} lies inside a path that is a file")
        self._paths.add(path)
        self._dirs.update(parents)

    def read_data(self, chunk: int = 1 << 20) -> bytes:
        """The next piece (at most ``chunk`` bytes) of the current entry's data; b"" when it is done."""
        if not self._remaining:
            return b""
        data = self.source.read(min(chunk, self._remaining))
        if not data:
            raise StreamIncomplete("the stream ended inside a file: the reading side failed or was stopped")
        self._remaining -= len(data)
        return data
