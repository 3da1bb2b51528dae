"""Publishing: a snapshot of an instructor's folder becomes the next commit of the course's git repository.

Students pull that repository with nbgitpuller (see :mod:`.sync`), whose merge keeps their own edits, so a
publish can happen any time during a course.

Security: the hub runs as root, the folder belongs to the instructor. The folder is read by a child
process that has dropped to the instructor's uid/gid (``tar``), so a publish can never read more than the
instructor could; the archive is unpacked with Python's ``data`` filter, which refuses absolute paths,
``..``, links leaving the tree and device files.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from condorhub.schema import CourseSettings

GIT = "git"
# Not course material: caches and the instructor's own git metadata.
EXCLUDES = (".git", ".ipynb_checkpoints", "__pycache__", ".DS_Store")


class PublishError(Exception):
    """Publishing failed; the message says why and what to do."""


@dataclass(frozen=True)
class Instructor:
    name: str
    uid: int
    gid: int
    home: str


def repository_path(courses_dir: Path, course: CourseSettings) -> Path:
    return courses_dir / f"{course.slug}.git"


def course_source(courses_dir: Path, course: CourseSettings) -> str:
    """Where students pull the course from."""
    return course.repository or str(repository_path(courses_dir, course))


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",  # no root ~/.gitconfig influences a publish
        "GIT_CONFIG_NOSYSTEM": "1",
        "LANG": "C.UTF-8",
    }
    result = subprocess.run([GIT, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise PublishError(f"git {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def _checked_folder(folder: str) -> PurePosixPath:
    path = PurePosixPath(folder.strip() or ".")
    if path.is_absolute() or ".." in path.parts:
        raise PublishError(f"{folder!r}: give a folder relative to your home directory, without `..`")
    return path


def _read_as(instructor: Instructor, folder: PurePosixPath) -> bytes:
    """A tar archive of the folder's contents, made by a process running as the instructor."""
    source = os.path.join(instructor.home, str(folder))

    def drop_privileges():
        os.setgroups([instructor.gid])
        os.setgid(instructor.gid)
        os.setuid(instructor.uid)

    args = ["tar", "-C", source, "-cf", "-"]
    args += [f"--exclude=./{name}" for name in EXCLUDES] + [f"--exclude={name}" for name in EXCLUDES]
    result = subprocess.run(
        [*args, "."], preexec_fn=drop_privileges, capture_output=True, env={"PATH": "/usr/bin:/bin"}
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise PublishError(
            f"cannot read {folder} in your home: {message[0] if message else 'tar failed'}; "
            "check that the folder exists and that you can read it"
        )
    return result.stdout


def _unpack_regular_files(archive: bytes, dest: Path) -> None:
    """Unpack only plain files and folders, inside ``dest``, with ordinary permissions.

    The archive comes from a process running as the instructor, so it is untrusted input to root:
    links, devices, absolute paths and ``..`` are skipped (tarfile's ``data`` filter does this too, but
    Debian 12's Python 3.11.2 predates it).
    """
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                continue
            target = dest.joinpath(*name.parts) if name.parts and name.parts != (".",) else dest
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            target.chmod(0o755 if member.mode & 0o111 else 0o644)


def _ensure_repository(repo: Path, branch: str) -> None:
    if (repo / "HEAD").exists():
        return
    repo.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(repo.parent, 0o755)
    _git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(repo))


def _publish_blocking(course: CourseSettings, courses_dir: Path, instructor: Instructor, folder: str) -> dict:
    folder_path = _checked_folder(folder)
    archive = _read_as(instructor, folder_path)
    repo = repository_path(courses_dir, course)
    _ensure_repository(repo, course.branch)
    with tempfile.TemporaryDirectory(prefix=f"publish-{course.slug}-") as tmp:
        work = Path(tmp) / "work"
        _git("init", "--quiet", f"--initial-branch={course.branch}", str(work))
        _git("remote", "add", "origin", str(repo), cwd=work)
        has_history = bool(_git("ls-remote", "--heads", "origin", course.branch, cwd=work))
        if has_history:
            _git("fetch", "--quiet", "origin", course.branch, cwd=work)
            _git("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=work)
        # Replace the tree with the snapshot, so files the instructor deleted are deleted in the course.
        for entry in work.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        _unpack_regular_files(archive, work)
        _git("add", "--all", cwd=work)
        if not _git("status", "--porcelain", cwd=work):
            head = _git("rev-parse", "HEAD", cwd=work) if has_history else ""
            return {"commit": head, "changed": False, "files": _count_files(work)}
        who = f"{instructor.name} <{instructor.name}@condorhub>"
        _git(
            "-c", f"user.name={instructor.name}", "-c", f"user.email={instructor.name}@condorhub",
            "commit", "--quiet", f"--author={who}", "-m", f"Published by {instructor.name} from ~/{folder_path}",
            cwd=work,
        )
        _git("push", "--quiet", "origin", f"HEAD:{course.branch}", cwd=work)
        commit = _git("rev-parse", "HEAD", cwd=work)
        files = _count_files(work)
    # Students read the repository with their own uid.
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    return {"commit": commit, "changed": True, "files": files}


def _count_files(work: Path) -> int:
    return sum(1 for p in work.rglob("*") if p.is_file() and ".git" not in p.relative_to(work).parts)


async def publish_folder(course: CourseSettings, courses_dir: Path, instructor: Instructor, folder: str) -> dict:
    """Publish ``~instructor/folder`` as the course's next version; git and tar run off the event loop."""
    if course.repository:
        raise PublishError(
            f"course {course.slug!r} is distributed from {course.repository}; publish by pushing there"
        )
    return await asyncio.to_thread(_publish_blocking, course, courses_dir, instructor, folder)


def trust_course_repositories(paths: list[str]) -> None:
    """Let every user's git read the course repositories although root owns them.

    Since git 2.35.2 a repository owned by another user is refused ("dubious ownership") unless it is
    listed in `safe.directory`; students' servers clone these as themselves. Only the exact course
    repositories are listed, in the system git config, so the protection stays for everything else.
    """
    result = subprocess.run(
        [GIT, "config", "--system", "--get-all", "safe.directory"], capture_output=True, text=True
    )
    present = set(result.stdout.split())
    for path in paths:
        if path not in present:
            subprocess.run([GIT, "config", "--system", "--add", "safe.directory", path], check=True)
