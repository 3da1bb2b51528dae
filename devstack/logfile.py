"""Log files of the daemons condorhub starts itself (the demo's hub, the start scripts the roles render).

The hub's log names users, their servers' addresses, their errors (and a debug log more): on a login node
where every student has a shell it must not be world-readable. Each log is created ``0640``, owned by
root and the ``adm`` group (Debian's group for reading logs; ``root`` where there is none), and an
existing log with another mode or owner (an older condorhub made them ``0644``) is put right when it is
opened again.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path
from typing import BinaryIO

LOG_MODE = 0o640
LOG_GROUP = "adm"


def log_gid() -> int:
    """The group that may read the logs: ``adm``, or root's group where the system has no ``adm``."""
    try:
        return grp.getgrnam(LOG_GROUP).gr_gid
    except KeyError:
        return 0


def open_log(path: str | os.PathLike[str], *, append: bool = True) -> BinaryIO:
    """``path`` opened for a daemon's output (binary; appended to, or truncated with ``append=False``),
    mode 0640 and, when run as root, owned by root:adm, whether it is new or was there already.

    A symbolic link or anything but a plain file with one name is refused (a log folder writable by
    someone else could point the hub's output at another file).
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else 0)
    try:
        fd = os.open(path, flags, LOG_MODE)
    except OSError as err:
        if path.is_symlink():
            raise OSError(f"the log {path} is a symbolic link; remove it (the hub writes only a plain file)") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(f"the log {path} is not a plain file with a single name; remove it")
        if os.geteuid() == 0:
            os.fchown(fd, 0, log_gid())
        # Also for a log that already existed: O_CREAT's mode applies only to a new file.
        os.fchmod(fd, LOG_MODE)
        if not append:
            os.ftruncate(fd, 0)
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise
