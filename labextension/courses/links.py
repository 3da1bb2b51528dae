"""Course links stay in the courses folder: nbgitpuller's ``/git-pull`` may only write under ``~/courses/``.

nbgitpuller joins ``targetpath`` to the server root without any check, so one click on
``.../git-pull?repo=<any>&targetpath=.ipython/profile_default/startup`` would plant code that every kernel
of the student runs (absolute paths and ``..`` work too). condorhub's servers accept a pull only when its
resolved target lies inside ``~/courses/`` or is the folder of one of the student's own courses (the site
file's ``target``); anything else is refused with a page that names the allowed folder.

The check wraps nbgitpuller's two handlers (the page and the event-stream API that does the pull), on the
classes themselves, so it holds whichever extension the server loads first; it computes the target exactly
as each handler does (including ``$NBGITPULLER_PARENTPATH``) and resolves links, so a symlink inside
``~/courses`` cannot point a pull elsewhere.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable

from tornado import web

COURSES_FOLDER = "courses"
_GUARDED = "_condorhub_confined"


def target_problem(server_root: str, target: str, allowed_targets: Iterable[str] = ()) -> str | None:
    """Why a pull into ``target`` (nbgitpuller's targetpath) is refused, or None when it is allowed."""
    parent = os.path.join(os.path.expanduser(server_root), os.getenv("NBGITPULLER_PARENTPATH", ""))
    real = os.path.realpath(os.path.join(parent, target))
    courses = os.path.realpath(os.path.join(os.path.expanduser(server_root), COURSES_FOLDER))
    if real.startswith(courses + os.sep) or real in {os.path.realpath(t) for t in allowed_targets}:
        return None
    return (
        f"This link would pull files into {target or 'your home folder'!r}. Course links may only pull into "
        f"your ~/{COURSES_FOLDER}/ folder (or a course folder of yours); ask for a link with "
        f"targetpath={COURSES_FOLDER}/<name>."
    )


def _sync_target(handler) -> str:
    # nbgitpuller.handlers.SyncHandler: targetpath, else the repository URL's last piece.
    return handler.get_argument("targetpath", handler.get_argument("repo", "").split("/")[-1])


def _ui_target(handler) -> str:
    # nbgitpuller.handlers.UIHandler: targetpath or targetPath, else the URL's last piece without slashes.
    repo = handler.get_argument("repo", "")
    return (
        handler.get_argument("targetpath", None)
        or handler.get_argument("targetPath", None)
        or repo.rstrip("/").split("/")[-1]
    )


def _guard(method, target_of, allowed_targets):
    @functools.wraps(method)
    async def get(self, *args, **kwargs):
        if self.current_user:  # unauthenticated requests get nbgitpuller's own refusal
            problem = target_problem(self.settings["server_root_dir"], target_of(self), allowed_targets())
            if problem:
                self.log.warning("refused a course link: %s", problem)
                raise web.HTTPError(403, "%s", problem)
        return await method(self, *args, **kwargs)

    setattr(get, _GUARDED, True)
    return get


def confine_nbgitpuller(server_app, allowed_targets) -> bool:
    """Install the check on nbgitpuller's handlers; ``allowed_targets()`` gives the student's course folders.

    Returns False when nbgitpuller is not installed (then there is no ``/git-pull`` to confine).
    """
    try:
        from nbgitpuller._compat import get_base_handler
    except ImportError:
        return False
    get_base_handler(server_app)  # as nbgitpuller's own loader does before importing its handlers
    from nbgitpuller import handlers

    for cls, target_of in ((handlers.SyncHandler, _sync_target), (handlers.UIHandler, _ui_target)):
        if not getattr(cls.get, _GUARDED, False):
            cls.get = _guard(cls.get, target_of, allowed_targets)
    return True
