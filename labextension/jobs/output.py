"""A job's stdout/stderr from a byte offset: what was appended since the Lab last asked.

With shared homes the job writes its output files in place, so the server reads them as they grow; the
Lab polls with the offset it got back. Text is cut at a UTF-8 character boundary, so a character that the
job has half written is sent whole with the next answer instead of as two replacement marks.
"""

from __future__ import annotations

import os

#: Most bytes in one answer (a job that printed megabytes is read in pieces).
MAX_CHUNK = 256 * 1024


def _complete_utf8(chunk: bytes) -> int:
    """Length of ``chunk`` without a trailing incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(chunk)) + 1):
        byte = chunk[-back]
        if byte & 0x80 == 0:  # ASCII: everything before is complete
            return len(chunk)
        if byte & 0xC0 == 0xC0:  # a lead byte: does its sequence fit?
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
            return len(chunk) if back >= need else len(chunk) - back
    return len(chunk)


def read_from(path: str, offset: int, max_bytes: int = MAX_CHUNK, *, final: bool = False) -> tuple[str, int]:
    """(text appended after ``offset``, the new offset). A missing file (the job has not started) reads as
    nothing; an offset beyond the end (the file was written anew, e.g. a resubmit) starts over at 0.
    ``final``: the job has ended, so a broken last character is sent as it is (nothing more will come)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return "", offset
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if offset > size:
            offset = 0
        fh.seek(offset)
        chunk = fh.read(max_bytes)
    if not final or len(chunk) == max_bytes:
        # The job may be in the middle of writing a character (or the piece ends inside one).
        chunk = chunk[: _complete_utf8(chunk)]
    return chunk.decode("utf-8", errors="replace"), offset + len(chunk)


def at_end(path: str, offset: int) -> bool:
    try:
        return os.stat(path).st_size <= offset
    except FileNotFoundError:
        return True
