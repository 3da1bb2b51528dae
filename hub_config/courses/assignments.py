"""Assignments: an instructor collects a folder from every student of a course, and hands feedback back.

Why not nbgrader (decided for issue 13, part 3)
-----------------------------------------------
nbgrader 0.9.6 (2026-09) installs into JupyterLab 4 (it requires ``jupyterlab>=4.2,<5`` and pulls in
``notebook>=7.2,<8``) and needs nothing of JupyterHub 6 for one course. Its file-system exchange is what
rules it out here (read in nbgrader/exchange/default/ of 0.9.6):

- the exchange root is created mode 0777, without the sticky bit (``ensure_root``): every student may
  rename or delete any course's folder in it (nbgrader issue #1225, open);
- ``inbound`` is 0733: every student writes submissions there, world-readable (files 0644, folders 0755),
  kept apart only by an unguessable random suffix of the folder name (added after #978; ananke #27 in
  2024: "students can read/modify other students' submissions" with such an exchange);
- returned feedback lies in one traversable (0711) folder for the whole class, each file findable only
  with its submission's secret (the answer to #1202): sound, but again one folder all students share;
- on condorhub that world-writable folder would have to be on a volume every HTCondor execute node
  mounts read-write for every user, next to code every student runs.

The REST exchange (ngshare) avoids the shared folder but is a separate service with its own database and
course roster. condorhub already has what a collect needs: a *reader running as the owner of the
content* and a *writer running as the receiving account*, joined by a pipe carrying a format with limits
(:mod:`.stream`, as publishing uses), so root never reads a user's files, and the course roster is the
LDAP groups. nbgrader's grading (autograde, gradebook) is not used by the courses today; an instructor can
still run ``nbgrader autograde`` on the collected folders in their own home.

The rules, and how they hold
----------------------------
- *Collect reads each student's folder as that student*: :mod:`.assignments_reader` runs with the
  student's uid (from their stored auth state), so it reads no more than the student can; no link is
  followed, the folder itself may not be a link. :mod:`.assignments_writer` runs as the instructor and
  writes ``~instructor/collected/<course>/<folder>/<student>/``, replacing that student's earlier copy
  only when the new one is complete.
- *Nothing is written into a student's home without the student's action*: returning only records, in
  the hub's state dir, that feedback may be fetched. The student's own *Fetch feedback* starts a reader as
  the instructor on that student's feedback folder only and a writer as the student into
  ``~student/feedback/<course>/<folder>/``.
- *Students cannot see other students' submissions*: collected copies are in the instructor's home
  (mode 0700 folders, 0600 files); a fetch always names the caller, never a student chosen in the request.
- Same limits as publishing (``course_publishing``: size, files, timeout), per student.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condorhub.schema import CoursePublishSettings, CourseSettings

from .publish import _drop_to, _last_json, _run_pipeline

COLLECTED = "collected"  # ~instructor/collected/<course>/<folder>/<student>/
FEEDBACK = "feedback"  # ~student/feedback/<course>/<folder>/, and the default feedback subfolder
# A folder directly in the home: not hidden (never ~/.ssh, ~/.jupyter, ~/.local of a whole class), no `/`.
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+ -]{0,99}$")
PARALLEL = 4  # students read at once: a class of 100 collects in ~25 rounds, the hub stays responsive
_locks: dict[str, asyncio.Lock] = {}


class AssignmentError(Exception):
    """Bad input; the message says what is wrong and what to do."""

    status = 400


class NotReady(AssignmentError):
    """The step needs an earlier one (collect before return, return before fetch) that has not happened."""

    status = 409


@dataclass(frozen=True)
class Account:
    """Who a reader or writer runs as: a user's uid, primary gid and home from their stored auth state."""

    name: str
    uid: int
    gid: int
    home: str


def checked_name(text: object, what: str = "folder", example: str = "exercise-3") -> str:
    """A folder name directly in a home, or an AssignmentError naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise AssignmentError(f'name the {what}, e.g. {{"{what}": "{example}"}}')
    name = text.strip()
    if name.startswith("/") or "/" in name or name in (".", "..") or ".." in name.split("/"):
        raise AssignmentError(
            f"{text!r}: give the name of a folder directly in the home (e.g. {example}), not a path: no `/`, no `..`"
        )
    if name.startswith("."):
        raise AssignmentError(f"{text!r}: hidden folders (names starting with `.`) are not collected or returned")
    if not NAME.match(name):
        raise AssignmentError(f"{text!r}: use letters, digits, `-`, `_`, `.`, `+` or spaces (at most 100 characters)")
    return name


# --- the record of what was collected and returned (hub state dir, root only) -----------------------------


class Records:
    """``<state_dir>/assignments/<course>.json``: what was collected, from whom, and what was returned.

    Written by the hub only, from values it produced itself (names, counts, times), never from user files.
    """

    def __init__(self, state_dir: Path):
        self.dir = state_dir / "assignments"

    def _path(self, slug: str) -> Path:
        return self.dir / f"{slug}.json"

    def load(self, slug: str) -> dict:
        try:
            data = json.loads(self._path(slug).read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, slug: str, data: dict) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self._path(slug).with_suffix(".json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, self._path(slug))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- one copy: reader as the owner | writer as the receiver ------------------------------------------------


async def copy_folder(
    source: Account,
    folder: str,
    receiver: Account,
    parent: str,
    name: str,
    settings: CoursePublishSettings,
    keep: str | None = None,
) -> dict:
    """``source``'s folder (a path below their home) → ``receiver``'s ``parent/name``; a result, never raises.

    Result: ``{"status": "collected", "files", "bytes", ...}`` or ``{"status": <reason>, "error": ...}``
    with reason ``missing``, ``link``, ``not_folder``, ``too_large``, ``unreadable``, ``bad_name``,
    ``refused`` (the stream broke a rule: what a take-over of the reader sends), ``timeout`` or ``failed``.
    """
    limits = [str(settings.max_size), str(settings.max_files)]
    python = [sys.executable, "-I", "-m"]  # -I: no PYTHON* variables, no user site of the reading user
    reader_args = [*python, "condorhub.courses.assignments_reader", os.path.join(source.home, folder), *limits]
    writer_args = [*python, "condorhub.courses.assignments_writer", parent, name, *limits, keep or ""]
    try:
        reader_rc, reader_err, writer_rc, writer_out, writer_err = await _run_pipeline(
            reader_args,
            _drop_to(source.uid, source.gid),
            writer_args,
            _drop_to(receiver.uid, receiver.gid),
            settings.timeout,
        )
    except TimeoutError:
        return {
            "status": "timeout",
            "error": f"took longer than {settings.timeout:g}s (course_publishing.timeout) and was stopped",
        }
    read = _last_json(reader_err)
    written = _last_json(writer_err) if writer_rc != 0 else {}
    if written.get("refused"):
        return {"status": "refused", "error": str(written.get("error"))}
    if reader_rc != 0:
        reason = read.get("reason")
        return {"status": reason if isinstance(reason, str) else "failed", "error": str(read.get("error"))}
    if writer_rc != 0:
        return {"status": "failed", "error": str(written.get("error"))}
    try:
        result = json.loads(writer_out)
    except ValueError:
        return {"status": "failed", "error": "the writing side gave no result"}
    done: dict[str, Any] = {"files": int(result.get("files", 0)), "bytes": int(result.get("bytes", 0))}
    if result.get("dropped"):
        done["dropped"] = f"the submission's own {keep}/ folder was left out (that name holds your feedback)"
    if read.get("skipped_count"):
        done["skipped"] = [str(s) for s in read.get("skipped", [])]
    return done


# --- the three steps ---------------------------------------------------------------------------------


def collected_parent(instructor: Account, course: CourseSettings, folder: str) -> str:
    return os.path.join(instructor.home, COLLECTED, course.slug, folder)


async def collect(
    course: CourseSettings,
    instructor: Account,
    students: dict[str, Account | None],
    requested: object,
    settings: CoursePublishSettings,
    records: Records,
) -> dict:
    """Collect ``folder`` from every student (``None``: the hub has no record of that student's home)."""
    folder = checked_name(requested)
    parent = collected_parent(instructor, course, folder)
    gate = asyncio.Semaphore(PARALLEL)

    async def one(name: str, account: Account | None) -> dict:
        if account is None:
            return {"status": "never_logged_in", "error": "never logged in to the hub: its home is not known yet"}
        async with gate:
            result = await copy_folder(account, folder, instructor, parent, name, settings, keep=FEEDBACK)
        return {"status": "collected", **result} if "status" not in result else result

    lock = _locks.setdefault(course.slug, asyncio.Lock())
    async with lock:
        names = sorted(students)
        results = dict(zip(names, await asyncio.gather(*(one(n, students[n]) for n in names)), strict=True))
        data = records.load(course.slug)
        entry = data.setdefault("assignments", {}).setdefault(folder, {})
        previous = entry.get("students", {})
        # A student who was collected before and fails now keeps their earlier copy (the writer only
        # replaces a copy with a complete one): say so.
        for name, result in results.items():
            if result["status"] != "collected" and previous.get(name, {}).get("status") == "collected":
                result["earlier_copy_kept"] = previous[name].get("at")
        entry["collected"] = {"at": _now(), "by": instructor.name}
        entry["students"] = {
            name: _student_record(r, previous.get(name), entry["collected"]["at"]) for name, r in results.items()
        }
        records.save(course.slug, data)
    return {
        "course": course.slug,
        "folder": folder,
        "into": f"~/{COLLECTED}/{course.slug}/{folder}/",
        "students": results,
        "collected": sum(1 for r in results.values() if r["status"] == "collected"),
    }


def _student_record(result: dict, previous: dict | None, at: str) -> dict:
    if result["status"] == "collected":
        return {"status": "collected", "at": at, "files": result["files"], "bytes": result["bytes"]}
    if previous and previous.get("status") == "collected":
        return {**previous, "last_attempt": result["status"]}
    return {"status": result["status"], "at": at}


def mark_returned(
    course: CourseSettings, instructor: Account, requested: object, feedback: object, records: Records
) -> dict:
    """Let the students of ``folder`` fetch ``~instructor/collected/<course>/<folder>/<student>/<feedback>/``."""
    folder = checked_name(requested)
    feedback_name = checked_name(feedback if feedback is not None else FEEDBACK, "feedback", FEEDBACK)
    # Each load ... save of the records runs in the event loop without an await in between, so updates
    # never interleave; only a collect (which awaits its copies) holds the course's lock.
    data = records.load(course.slug)
    entry = data.get("assignments", {}).get(folder)
    if not entry or "collected" not in entry:
        raise NotReady(
            f"{folder} has not been collected in {course.title} yet: collect it first, write each student's "
            f"feedback into ~/{COLLECTED}/{course.slug}/{folder}/<student>/{feedback_name}/, then return it"
        )
    entry["returned"] = {"at": _now(), "by": instructor.name, "feedback": feedback_name}
    records.save(course.slug, data)
    return {
        "course": course.slug,
        "folder": folder,
        "returned": entry["returned"],
        "students": sorted(entry.get("students", {})),
        "from": f"~/{COLLECTED}/{course.slug}/{folder}/<student>/{feedback_name}/",
    }


async def fetch_feedback(
    course: CourseSettings,
    student: Account,
    requested: object,
    instructor_of,
    settings: CoursePublishSettings,
    records: Records,
) -> dict:
    """The student's own action: their feedback for ``folder`` into ``~/feedback/<course>/<folder>/``.

    ``instructor_of(name)`` gives the returning instructor's :class:`Account`, or None when that person
    no longer teaches the course (then nothing is read).
    """
    folder = checked_name(requested)
    data = records.load(course.slug)
    entry = data.get("assignments", {}).get(folder) or {}
    returned = entry.get("returned")
    if not returned:
        raise NotReady(f"there is no feedback for {folder} in {course.title} yet: your instructor has not returned it")
    instructor = await instructor_of(returned["by"])
    if instructor is None:
        raise NotReady(
            f"{returned['by']}, who returned {folder}, no longer teaches {course.title}; "
            "ask your instructor to return it again"
        )
    source = os.path.join(COLLECTED, course.slug, folder, student.name, returned["feedback"])
    parent = os.path.join(student.home, FEEDBACK, course.slug)
    result = await copy_folder(instructor, source, student, parent, folder, settings)
    if "status" in result:
        if result["status"] == "missing":
            raise NotReady(f"{returned['by']} has written no feedback for you on {folder} (yet)")
        raise AssignmentError(f"fetching your feedback on {folder} failed: {result['error']}")
    data = records.load(course.slug)
    data.setdefault("assignments", {}).setdefault(folder, {}).setdefault("fetched", {})[student.name] = _now()
    records.save(course.slug, data)
    return {"course": course.slug, "folder": folder, "into": f"~/{FEEDBACK}/{course.slug}/{folder}/", **result}


def listing(course: CourseSettings, records: Records, *, student: str | None = None) -> dict:
    """What the course page shows: everything for instructors, a student's returned work for that student."""
    assignments = records.load(course.slug).get("assignments", {})
    if student is None:
        return {"course": course.slug, "assignments": assignments}
    mine = {}
    for folder, entry in assignments.items():
        if entry.get("returned"):
            mine[folder] = {
                "returned": entry["returned"]["at"],
                "fetched": entry.get("fetched", {}).get(student),
                "submitted": entry.get("students", {}).get(student, {}).get("status") == "collected",
            }
    return {"course": course.slug, "assignments": mine}
