"""Publishing: a snapshot of an instructor's folder becomes the next commit of the course's git repository.

Students pull that repository with nbgitpuller (see :mod:`.sync`), whose merge keeps their own edits, so a
publish can happen any time during a course.

Security: the hub runs as root and the folder belongs to the instructor, so root never reads, unpacks or
commits any of it. The hub only starts two unprivileged processes joined by a pipe and waits for them:

- :mod:`.reader` runs as the instructor: it can read no more than the instructor can, follows no link and
  sends only regular files;
- :mod:`.writer` runs as the course service account (``course_publishing.account``), which owns the course
  repositories: it refuses ``.git`` components, links, oversized or malformed streams, and writes the
  commit with ``git fast-import`` (no work tree, hooks and fsmonitor off, no system/global config).

Any process of the instructor can take over the reader (same uid), so the pipe is treated as hostile by
the writer; what such a process could then do is publish files the instructor may publish anyway. The
whole publish has a timeout, after which both processes are killed; the course's branch only moves when
the writer finished.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from condorhub.schema import CoursePublishSettings, CourseSettings

GIT = "git"
_locks: dict[str, asyncio.Lock] = {}


class PublishError(Exception):
    """Publishing failed; the message says why and what to do."""


@dataclass(frozen=True)
class Instructor:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class ServiceAccount:
    name: str
    uid: int
    gid: int


def repository_path(courses_dir: Path, course: CourseSettings) -> Path:
    return courses_dir / f"{course.slug}.git"


def course_source(courses_dir: Path, course: CourseSettings) -> str:
    """Where students pull the course from."""
    return course.repository or str(repository_path(courses_dir, course))


def service_account(settings: CoursePublishSettings) -> ServiceAccount:
    """The account that owns course repositories; a clear error when it is missing or privileged."""
    try:
        entry = pwd.getpwnam(settings.account)
    except KeyError:
        raise PublishError(
            f"the course service account {settings.account!r} does not exist on the hub, so courses cannot be "
            f"published; create it (`useradd --system --user-group --no-create-home --home-dir /nonexistent "
            f"--shell /usr/sbin/nologin {settings.account}`, which the jupyterhub Ansible role does) or set "
            "course_publishing.account"
        ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise PublishError(f"the course service account {settings.account!r} must not be root or in group root")
    return ServiceAccount(entry.pw_name, entry.pw_uid, entry.pw_gid)


def prepare_repository_dir(repo: Path, account: ServiceAccount) -> None:
    """An (empty) folder for the course repository, owned by the service account, which fills it.

    Root only creates the empty folder. A repository an earlier condorhub created as root is handed over
    to the account (root-written content, no instructor file in it: a bare repository has no work tree).
    """
    repo.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(repo, 0o755)
    except FileExistsError:
        pass
    st = os.lstat(repo)
    if st.st_uid == account.uid:
        return
    if st.st_uid != 0 or not os.path.isdir(repo) or os.path.islink(repo):
        raise PublishError(
            f"{repo} belongs to uid {st.st_uid}, not to the course service account {account.name}; "
            f"`chown -R {account.name}: {repo}` if it is the course's repository"
        )
    for dirpath, dirnames, filenames in os.walk(repo):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), account.uid, account.gid)
    os.lchown(repo, account.uid, account.gid)


def checked_folder(folder: str) -> PurePosixPath:
    """The folder argument as a relative path inside the home; refuses the home itself and escapes."""
    text = folder.strip()
    path = PurePosixPath(text)
    if not text or path == PurePosixPath("."):
        raise PublishError(
            'name the folder to publish, e.g. {"folder": "teaching/dl-intro"}; your whole home (with ~/.ssh '
            "and your other files) is never published"
        )
    if path.is_absolute() or ".." in path.parts:
        raise PublishError(f"{folder!r}: give a folder relative to your home directory, without `..`")
    if any(part.lower() == ".git" for part in path.parts):
        raise PublishError(f"{folder!r}: a folder inside a git repository's .git is not course material")
    return path


def _drop_to(uid: int, gid: int) -> dict:
    # Popen switches ids after fork, before exec: setgroups, setgid, setuid, in that order.
    return {"user": uid, "group": gid, "extra_groups": [gid]}


def _last_json(stderr: bytes) -> dict:
    for line in reversed(stderr.decode(errors="replace").strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {"error": stderr.decode(errors="replace").strip()[-300:] or "no answer"}


async def _tail(stream: asyncio.StreamReader, keep: int = 65536) -> bytes:
    """The last ``keep`` bytes a child writes: the reader is the instructor's, and could flood the hub."""
    data = b""
    while chunk := await stream.read(65536):
        data = (data + chunk)[-keep:]
    return data


async def _run_pipeline(reader_args, reader_ids, writer_args, writer_ids, timeout: float):
    """Start reader | writer, wait for both; kill both (their whole process groups) after ``timeout``."""
    read_end, write_end = os.pipe()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    try:
        reader = await asyncio.create_subprocess_exec(
            *reader_args,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd="/",
            env=env,
            process_group=0,
            **reader_ids,
        )
        try:
            writer = await asyncio.create_subprocess_exec(
                *writer_args,
                stdin=read_end,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd="/",
                env=env,
                process_group=0,
                **writer_ids,
            )
        except BaseException:
            reader.kill()
            raise
    finally:
        os.close(read_end)
        os.close(write_end)
    procs = (reader, writer)

    async def finish():
        outputs = await asyncio.gather(_tail(reader.stderr), _tail(writer.stdout), _tail(writer.stderr))
        await asyncio.gather(reader.wait(), writer.wait())
        return outputs

    try:
        reader_err, writer_out, writer_err = await asyncio.wait_for(finish(), timeout)
    except BaseException:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await asyncio.gather(*(proc.wait() for proc in procs), return_exceptions=True)
        raise
    return reader.returncode, reader_err, writer.returncode, writer_out, writer_err


async def publish_folder(
    course: CourseSettings,
    courses_dir: Path,
    instructor: Instructor,
    folder: str,
    settings: CoursePublishSettings,
) -> dict:
    """Publish ``~instructor/folder`` as the course's next version (one publish per course at a time)."""
    if course.repository:
        raise PublishError(f"course {course.slug!r} is distributed from {course.repository}; publish by pushing there")
    folder_path = checked_folder(folder)
    account = service_account(settings)
    repo = repository_path(courses_dir, course)
    prepare_repository_dir(repo, account)
    limits = [str(settings.max_size), str(settings.max_files)]
    timeout = settings.timeout
    python = [sys.executable, "-I", "-m"]  # -I: no PYTHON* variables, no user site (the instructor's ~/.local)
    reader_args = [*python, "condorhub.courses.reader", os.path.join(instructor.home, str(folder_path)), *limits]
    message = f"Published by {instructor.name} from ~/{folder_path}"
    writer_args = [*python, "condorhub.courses.writer", str(repo), course.branch, instructor.name, message, *limits]

    lock = _locks.setdefault(course.slug, asyncio.Lock())
    async with lock:
        try:
            reader_rc, reader_err, writer_rc, writer_out, writer_err = await _run_pipeline(
                reader_args,
                _drop_to(instructor.uid, instructor.gid),
                writer_args,
                _drop_to(account.uid, account.gid),
                timeout,
            )
        except TimeoutError:
            raise PublishError(
                f"publishing took longer than {settings.timeout:g}s (course_publishing.timeout) and was stopped; "
                "nothing was published. Publish a smaller folder."
            ) from None
    read = _last_json(reader_err)
    written = _last_json(writer_err) if writer_rc != 0 else {}
    if written.get("refused"):
        # First: a refused stream is what a take-over of the reader looks like, whatever the reader says.
        raise PublishError(f"publishing {folder_path} refused: {written.get('error')}. Nothing was published.")
    if reader_rc != 0:
        raise PublishError(
            f"cannot read {folder_path} in your home: {read.get('error')}; check that the folder exists and that "
            "you can read it. Nothing was published."
        )
    if writer_rc != 0:
        raise PublishError(f"publishing {folder_path} failed: {written.get('error')}. Nothing was published.")
    result = json.loads(writer_out)
    if read.get("skipped_count"):
        result["skipped"] = read.get("skipped", [])
        result["skipped_note"] = "links and special files are not published"
    return result


def trust_course_repositories(paths: list[str]) -> None:
    """Let every user's git read the course repositories although the service account owns them.

    Since git 2.35.2 a repository owned by another user is refused ("dubious ownership") unless it is
    listed in `safe.directory`; students' servers clone these as themselves. Only the exact course
    repositories are listed, in the system git config, so the protection stays for everything else.
    """
    result = subprocess.run([GIT, "config", "--system", "--get-all", "safe.directory"], capture_output=True, text=True)
    present = set(result.stdout.split())
    for path in paths:
        if path not in present:
            subprocess.run([GIT, "config", "--system", "--add", "safe.directory", path], check=True)
