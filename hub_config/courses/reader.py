"""The reading side of a publish; runs as the instructor (never as root).

    python -I -m condorhub.courses.reader <folder> <max_bytes> <max_files>

Walks ``folder`` without following links and writes every regular file to stdout in the format of
:mod:`condorhub.courses.stream`. Running as the instructor means it can never read more than the
instructor could; a link (to /etc/shadow, to another user's home) is not followed and not published, it is
only listed as skipped. Limits are checked on the listing first, so an oversized folder is refused before
any byte is read. On the last line of stderr it writes a JSON summary (skipped entries) or the error.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from condorhub.courses import stream

# Not course material: caches, and the instructor's own git metadata (never published: a course
# repository's history is the hub's).
EXCLUDED_DIRS = {".git", ".ipynb_checkpoints", "__pycache__"}
# Compared in lower case. A `.git` file is a submodule's or worktree's pointer to its repository.
EXCLUDED_FILES = {".ds_store", ".git", ".gitmodules"}
MAX_SKIPPED_LISTED = 20


class ReadError(Exception):
    pass


def listing(top: str, excluded: list[str] | None = None) -> tuple[list[tuple[str, int, bool]], list[str]]:
    """(regular files as (relative path, size, executable), skipped entries) under ``top``.

    ``excluded``, when given, collects what is left out by name (``.git``, caches): the Lab's publish
    preview shows it, computed with this same function so that it matches what a publish sends.
    """
    files: list[tuple[str, int, bool]] = []
    skipped: list[str] = []

    def failed(err: OSError):
        raise ReadError(f"{err.filename}: {err.strerror}")

    for dirpath, dirnames, filenames in os.walk(top, onerror=failed, followlinks=False):
        rel_dir = os.path.relpath(dirpath, top)
        rel = (lambda name: name) if rel_dir == "." else (lambda name: f"{rel_dir}/{name}")  # noqa: B023 - used in this iteration only
        keep = []
        for name in sorted(dirnames):
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISLNK(st.st_mode):
                skipped.append(f"{rel(name)} (link)")  # os.walk lists links to folders as folders
            elif name.lower() not in EXCLUDED_DIRS:
                keep.append(name)
            elif excluded is not None:
                excluded.append(f"{rel(name)}/")
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.lower() in EXCLUDED_FILES:
                if excluded is not None:
                    excluded.append(rel(name))
                continue
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                files.append((rel(name), st.st_size, bool(st.st_mode & 0o111)))
            else:
                skipped.append(f"{rel(name)} ({'link' if stat.S_ISLNK(st.st_mode) else 'not a regular file'})")
    return files, skipped


def check_limits(files, limits: stream.Limits) -> None:
    total = sum(size for _, size, _ in files)
    if len(files) > limits.max_files:
        raise ReadError(
            f"the folder holds {len(files)} files, more than the {limits.max_files} a publish may contain "
            "(course_publishing.max_files); publish a smaller folder"
        )
    if total > limits.max_bytes:
        raise ReadError(
            f"the folder holds {total / 2**20:.0f} MiB, more than the {limits.max_bytes / 2**20:.0f} MiB a publish "
            "may contain (course_publishing.max_size); keep data sets out of the course folder"
        )


def send_file(out, top: str, path: str, size: int, executable: bool) -> None:
    # O_NOFOLLOW/O_NONBLOCK: a file swapped for a link or a fifo since the listing is refused, not followed
    # or waited on.
    fd = os.open(os.path.join(top, path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(src.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise ReadError(f"{path} changed while it was being published; publish again")
        stream.write_file_header(out, path, size, executable)
        left = size
        while left:
            data = src.read(min(left, 1 << 20))
            if not data:
                raise ReadError(f"{path} shrank while it was being published; publish again")
            out.write(data)
            left -= len(data)


def main(argv: list[str]) -> int:
    top, max_bytes, max_files = argv[0], int(argv[1]), int(argv[2])
    limits = stream.Limits(max_bytes=max_bytes, max_files=max_files)
    out = sys.stdout.buffer
    try:
        if not os.path.isdir(top):
            raise ReadError("no such folder" if not os.path.exists(top) else "not a folder")
        files, skipped = listing(top)
        for path, _, _ in files:
            try:
                stream.check_path(path)
            except stream.StreamRefused as err:
                raise ReadError(f"{err}; rename it") from None
        check_limits(files, limits)
        stream.write_header(out)
        for path, size, executable in files:
            send_file(out, top, path, size, executable)
        stream.write_end(out, len(files), sum(size for _, size, _ in files))
        out.flush()
    except (ReadError, OSError, UnicodeEncodeError) as err:
        message = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)
        print(json.dumps({"error": message}), file=sys.stderr)
        return 1
    print(json.dumps({"skipped": skipped[:MAX_SKIPPED_LISTED], "skipped_count": len(skipped)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
