"""The reading side of a collect or a feedback fetch; runs as the owner of the folder (never as root).

    python -I -m condorhub.courses.assignments_reader <folder> <max_bytes> <max_files>

The same walk as a publish's :mod:`.reader` (regular files only, no link followed, caches and ``.git``
left out, limits checked on the listing before any byte is read), with two differences a collect needs:

- the folder itself may not be a link: a student's ``exercise-3`` pointing elsewhere is reported, not
  followed (the walk below it follows nothing either);
- the summary on the last line of stderr says *why* a folder was not sent (``reason``: ``missing``,
  ``link``, ``not_folder``, ``too_large``, ``unreadable``), so the instructor's report can say "no such
  folder" for one student and "too large" for another instead of one error for the whole class.

Running as the folder's owner is what keeps a student's submission to what that student can read.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from condorhub.courses import reader, stream


class Refused(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def check_top(top: str) -> None:
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        raise Refused("missing", "no such folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise Refused("link", "it is a link, not a folder (links are not followed)")
    if not stat.S_ISDIR(st.st_mode):
        raise Refused("not_folder", "it is not a folder")


def check_limits(files: list[tuple[str, int, bool]], limits: stream.Limits) -> None:
    total = sum(size for _, size, _ in files)
    if len(files) > limits.max_files:
        raise Refused(
            "too_large", f"{len(files)} files, more than the {limits.max_files} allowed (course_publishing.max_files)"
        )
    if total > limits.max_bytes:
        raise Refused(
            "too_large",
            f"{total / 2**20:.0f} MiB, more than the {limits.max_bytes / 2**20:.0f} MiB allowed "
            "(course_publishing.max_size)",
        )


def main(argv: list[str]) -> int:
    top, limits = argv[0], stream.Limits(max_bytes=int(argv[1]), max_files=int(argv[2]))
    out = sys.stdout.buffer
    try:
        check_top(top)
        try:
            files, skipped = reader.listing(top)
        except reader.ReadError as err:
            raise Refused("unreadable", str(err)) from None
        for path, _, _ in files:
            try:
                stream.check_path(path)
            except stream.StreamRefused as err:
                raise Refused("bad_name", f"{err}; rename it") from None
        check_limits(files, limits)
        stream.write_header(out)
        for path, size, executable in files:
            reader.send_file(out, top, path, size, executable)
        total = sum(size for _, size, _ in files)
        stream.write_end(out, len(files), total)
        out.flush()
    except Refused as err:
        print(json.dumps({"error": str(err), "reason": err.reason}), file=sys.stderr)
        return 1
    except (reader.ReadError, OSError, UnicodeEncodeError) as err:
        message = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)
        # send_file's words are a publish's; a file the student saves during a collect ends up here too.
        message = message.replace("while it was being published; publish again", "while it was copied; try again")
        print(json.dumps({"error": message, "reason": "unreadable"}), file=sys.stderr)
        return 1
    summary = {"files": len(files), "bytes": total, "skipped": skipped[: reader.MAX_SKIPPED_LISTED]}
    print(json.dumps({**summary, "skipped_count": len(skipped)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
