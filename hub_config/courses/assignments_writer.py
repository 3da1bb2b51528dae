"""The writing side of a collect or a feedback fetch; runs as the receiving user (never as root).

    python -I -m condorhub.courses.assignments_writer <parent> <name> <max_bytes> <max_files> [<keep>]

Reads a :mod:`condorhub.courses.stream` on stdin and makes it the folder ``<parent>/<name>``: the files go
into a fresh hidden folder next to it, which replaces ``<name>`` only once the stream's end record
arrived (an atomic exchange where the file system has one, ``renameat2(RENAME_EXCHANGE)``; else two
renames). A stream that is refused, cut off or killed leaves ``<name>`` as it was and its partial copy is
removed.

The stream comes from a process running as someone else (the student, for a collect), which any of
that person's processes can take over, so it is hostile input: :class:`stream.StreamReader` refuses
absolute paths, ``..``, ``.git`` components, duplicates and oversized streams, and files are created
with ``O_EXCL | O_NOFOLLOW`` inside the fresh folder. Running as the receiver means a mistake here could
do no more than that user could do in their own home anyway.

``keep`` (a collect's ``feedback``): the instructor's feedback folder of the copy being replaced moves
into the new copy, so collecting again does not throw away feedback already written; a folder of that
name in the student's new submission is dropped (and reported), so a student cannot plant "feedback".

Prints ``{"files": …, "bytes": …}`` on stdout, or ``{"error": …, "refused": …}`` on stderr.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import stat
import sys
import tempfile

from condorhub.courses import stream

AT_FDCWD = -100
RENAME_EXCHANGE = 2


class WriteError(Exception):
    pass


def _remove(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically; False where the kernel or file system (NFS) cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), b)


def receive(source: stream.StreamReader, tmp: str) -> None:
    """Write every file of the stream below the (fresh, empty) folder ``tmp``."""
    while (entry := source.next_entry()) is not None:
        target = os.path.join(tmp, entry.path)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        mode = 0o700 if entry.executable else 0o600
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            while data := source.read_data():
                out.write(data)


def replace(tmp: str, final: str, keep: str | None) -> dict:
    """Make ``tmp`` the folder ``final``; returns what happened to ``keep``."""
    result = {"kept": False, "dropped": False}
    old_exists = os.path.lexists(final)
    if keep:
        new_keep = os.path.join(tmp, keep)
        old_keep = os.path.join(final, keep)
        if os.path.lexists(new_keep):
            _remove(new_keep)
            result["dropped"] = True
        if old_exists and os.path.isdir(final) and not os.path.islink(final):
            try:
                if stat.S_ISDIR(os.lstat(old_keep).st_mode):
                    os.rename(old_keep, new_keep)
                    result["kept"] = True
            except FileNotFoundError:
                pass
    if not old_exists:
        os.rename(tmp, final)
    elif _exchange(tmp, final):
        _remove(tmp)  # now the previous copy
    else:
        aside = f"{tmp}.old"
        os.rename(final, aside)
        os.rename(tmp, final)
        _remove(aside)
    return result


def main(argv: list[str]) -> int:
    parent, name = argv[0], argv[1]
    limits = stream.Limits(max_bytes=int(argv[2]), max_files=int(argv[3]))
    keep = argv[4] if len(argv) > 4 and argv[4] else None
    os.umask(0o077)  # submissions and feedback are private to their receiver
    tmp = None
    try:
        if not name or "/" in name or name in (".", ".."):
            raise WriteError(f"{name!r} is not a folder name")
        os.makedirs(parent, mode=0o700, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{name}.incoming-", dir=parent)
        source = stream.StreamReader(sys.stdin.buffer, limits)
        receive(source, tmp)
        result = replace(tmp, os.path.join(parent, name), keep)
        tmp = None
    except (stream.StreamRefused, WriteError, OSError) as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        refused = isinstance(err, stream.StreamRefused) and not isinstance(err, stream.StreamIncomplete)
        message = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)
        print(json.dumps({"error": message, "refused": refused}), file=sys.stderr)
        return 2 if isinstance(err, stream.StreamRefused) else 1
    print(json.dumps({"files": source.files, "bytes": source.total, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
