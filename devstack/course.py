"""The demo's course: carol (instructors) teaches the course notebooks to alice's group (students).

At ``devstack up`` the notebooks of this checkout (``notebooks/course/``: they generate their own data, nothing
is downloaded) are copied into carol's home, as carol, once (``~carol/teaching/dl-intro``; afterwards the
folder is hers to edit), and published through the hub's own publish path (:func:`condorhub.courses.publish.
publish_folder`: the reader runs as carol, the writer as the course service account) when the course has no
version yet. alice then finds them in ``~/courses/dl-intro`` at her next server start, as a student of a real
course would; carol publishes new versions from the Lab or the hub's API like any instructor.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .accounts import copy_into_home_as, ensure_system_account
from .directory import DemoUser

__all__ = ["DEMO_COURSE", "MATERIAL", "TEACHING_FOLDER", "course_settings", "publish_demo_course"]

#: The site file's ``courses`` entry of the demo.
DEMO_COURSE = {
    "slug": "dl-intro",
    "title": "Deep learning for physicists",
    "students_group": "students",
    "instructors_group": "instructors",
}
#: The course material in the checkout.
MATERIAL = Path(__file__).resolve().parents[1] / "notebooks" / "course"
#: Where the material lies in the instructor's home (what she publishes).
TEACHING_FOLDER = f"teaching/{DEMO_COURSE['slug']}"


def course_settings(courses_dir: str | os.PathLike) -> dict:
    """The site file's course keys of the demo: ``hub.courses_dir`` (merge into ``hub``) and ``courses``."""
    return {"courses_dir": str(courses_dir), "courses": [dict(DEMO_COURSE)]}


def _has_version(repo: Path, branch: str) -> bool:
    if not (repo / "HEAD").exists():
        return False
    # Read-only, no config of anyone's (the repository belongs to the course account).
    proc = subprocess.run(["git", f"--git-dir={repo}", "-c", f"safe.directory={repo}", "rev-parse", "--verify",
                           "--quiet", f"refs/heads/{branch}"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    return proc.returncode == 0


def publish_demo_course(site: dict, users: Sequence[DemoUser], home_base: str | os.PathLike,
                        material: Path = MATERIAL) -> str:
    """Give the demo's instructor the material and publish it as the course's first version; what it did, in
    words. A re-run keeps the instructor's folder and the published versions as they are."""
    from condorhub.courses.publish import Instructor, publish_folder, repository_path
    from condorhub.schema import CoursePublishSettings, CourseSettings

    course = CourseSettings(**site["courses"][0])
    publishing = CoursePublishSettings(**site.get("course_publishing", {}))
    ensure_system_account(publishing.account)
    instructor = next(u for u in users if u.group == course.instructors_group)
    copied = copy_into_home_as(instructor, home_base, material, TEACHING_FOLDER)
    courses_dir = Path(site["hub"]["courses_dir"])
    if _has_version(repository_path(courses_dir, course), course.branch):
        return (f"course {course.slug}: kept its published versions"
                + (f" ({instructor.uid} got a fresh ~/{TEACHING_FOLDER})" if copied else ""))
    courses_dir.mkdir(parents=True, exist_ok=True)
    courses_dir.chmod(0o755)  # students pull from it (as the hub makes it)
    who = Instructor(instructor.uid, instructor.uid_number, instructor.gid_number,
                     instructor.home_under(str(home_base)))
    result = asyncio.run(publish_folder(course, courses_dir, who, TEACHING_FOLDER, publishing))
    return (f"course {course.slug}: {instructor.uid} published ~/{TEACHING_FOLDER} "
            f"({result.get('files', '?')} files, version {str(result.get('commit', '?'))[:10]})")
