"""The hub's state disk: new logins and servers are refused while the disk holding the hub's database is
(nearly) full, so that the hub never runs it out of space itself.

A full disk under ``hub.state_dir`` does not stop running servers (their processes and HTCondor jobs do
not live there), but every JupyterHub request that writes the database fails with a 500: a login ends in
an error page, a logged-in user whose activity is due for an update is shown the login page again, a
spawn dies half-way through its database writes. Checking the free space first and refusing with a
message while enough is left for the writes that running servers need (activity, their stop) keeps the
hub answering, and says what is wrong and who can fix it. The check is one ``statvfs``: no cost per
request worth caching.
"""

from __future__ import annotations

import os
from pathlib import Path


class StateDiskFull(RuntimeError):
    """The hub's state disk has less free space than the hub needs to take new work.

    ``jupyterhub_message`` is what JupyterHub shows the user on the spawn page ("Spawn failed: …").
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.jupyterhub_message = message


def state_dir_of(db_url: str) -> Path | None:
    """The folder of the hub's SQLite database (``sqlite:////var/lib/condorhub/jupyterhub.sqlite``);
    None for another database, which lives on another machine's disk."""
    prefix = "sqlite:///"
    if not db_url.startswith(prefix):
        return None
    path = db_url[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).parent


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem (root's reserve excluded: the
    hub runs as root, but a disk down to root's reserve is already in trouble)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def check(path: Path | None, min_free: int) -> None:
    """Raise :class:`StateDiskFull` when ``path``'s disk has less than ``min_free`` bytes free."""
    if path is None or min_free <= 0:
        return
    try:
        free = free_bytes(path)
    except OSError:
        return  # the folder is gone or unreadable: the hub's own writes will say so more precisely
    if free < min_free:
        raise StateDiskFull(
            f"The hub's state disk ({path}) is full ({_size(free)} free, the hub needs {_size(min_free)}): new "
            "logins and servers are refused until an administrator frees space there. Running servers are not "
            "affected."
        )


def _size(n: int) -> str:
    for unit, factor in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f}{unit}".replace(".0" + unit, unit)
    return f"{n} bytes"
