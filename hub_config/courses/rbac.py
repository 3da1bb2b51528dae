"""JupyterHub roles that follow from the courses: instructors reach their own students' servers only.

A course's instructors may open (``access:servers``) and stop (``delete:servers``, JupyterHub 6's name for
stopping; ``servers`` would also let them start a server as the student, with a profile of their choosing)
the servers of that course's students, and see them on the course page.

Scopes filtered with ``!group=`` apply to the members of that JupyterHub group, and JupyterHub groups
mirror the LDAP groups (the authenticator manages them), so a course's reach follows the directory.
Students get no extra scope: by default a user can only reach their own server.
"""

from __future__ import annotations

from collections.abc import Iterable

from condorhub.schema import CourseSettings


def instructor_role(course: CourseSettings) -> dict:
    group = course.students_group
    return {
        "name": f"course-{course.slug}-instructors",
        "description": f"Instructors of {course.title}: see, open and stop the servers of its students",
        "scopes": [
            f"access:servers!group={group}",
            f"delete:servers!group={group}",
            f"read:servers!group={group}",
            f"read:users:name!group={group}",
            f"read:users:activity!group={group}",
            f"read:groups!group={group}",
        ],
        "groups": [course.instructors_group],
    }


def course_roles(courses: Iterable[CourseSettings]) -> list[dict]:
    return [instructor_role(course) for course in courses]
