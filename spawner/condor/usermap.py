"""The pool's user map: who each user is to the schedd (accounting group, limits), kept current from LDAP roles.

Users hold their own HTCondor credential (issue 12) and can write any submit description, so the *schedd*
decides what a job is charged to and what it may ask for (the htcondor role's configuration, see
ansible/roles/htcondor/templates/condorhub.config.j2). It reads those facts per user from a ClassAd user map
(HTCondor's ``CLASSAD_USER_MAPFILE_<name>``, looked up with ``userMap()``), which only the hub can fill: the
hub learns a user's roles at login. One file, one line per fact, a submap per fact::

    * alice group_students          accounting groups the user may charge (first: the default)
    roles alice student             the user's condorhub roles (the user is known to the pool)
    who alice students              the roles as the refusal messages name them
    gpus alice 1                    most GPUs one job may request
    runtime alice 28800             longest allowed_job_duration (seconds)
    jobs alice 1000                 most jobs one submission may add

A user's limits are the largest among the ``condor`` profiles their roles may start (the spawn form offers
the same), the groups those of their roles in ``htcondor.accounting_groups``; a user whose roles may start
no condor profile gets only ``roles``/``who`` lines, and the schedd refuses their jobs saying so. A user
not in the file at all never logged in to the hub.

:func:`render` is pure (the map of a set of users); :class:`UserMapWriter` merges one user into the file
under a lock, writes it atomically (temp file + rename, keeping the owner and mode ops gave the file: root,
readable by condor only, since roles are not for every user to see) and has the schedd re-read it, only
when the user's lines changed. The schedd re-reads a map only at a reconfig, and only if the file's
modification time (whole seconds) changed; the writer makes sure it does.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import math
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_RECONFIG_COMMAND",
    "UserLimits",
    "UserMapError",
    "UserMapWriter",
    "configure_user_map",
    "limits_for",
    "parse",
    "render",
]

log = logging.getLogger(__name__)

#: How the hub has the schedd re-read the map: as local root with the host's own HTCondor configuration (FS
#: authentication, which ALLOW_ADMINISTRATOR already admits for root@*); the hub's token gains no right.
DEFAULT_RECONFIG_COMMAND = ("condor_reconfig", "-schedd")

#: The submaps, in the order the file lists them; "*" is the default map (the accounting groups).
SUBMAPS = ("*", "roles", "who", "gpus", "runtime", "jobs")

# A user name as the pool's map may hold it: literal (no regex), no whitespace; the hub's own validation
# is stricter still.
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,63}")
_VALUE = re.compile(r"[A-Za-z0-9_.,+-]{1,200}")


class UserMapError(RuntimeError):
    """The map could not be written or the schedd not told; the message says which and why."""


@dataclass(frozen=True)
class UserLimits:
    """What the pool lets one user do (one line per field in the map)."""

    roles: tuple[str, ...]
    groups: tuple[str, ...] = ()
    gpus: int = 0
    runtime_seconds: int = 0
    jobs: int = 0

    @property
    def may_run_jobs(self) -> bool:
        return bool(self.groups)

    def lines(self, user: str) -> list[tuple[str, str, str]]:
        """(submap, user, value) lines of this user."""
        out = [("roles", user, ",".join(self.roles)), ("who", user, ",".join(_plural(r) for r in self.roles))]
        if self.may_run_jobs:
            out += [
                ("*", user, ",".join(self.groups)),
                ("gpus", user, str(self.gpus)),
                ("runtime", user, str(self.runtime_seconds)),
                ("jobs", user, str(self.jobs)),
            ]
        return out


def _plural(role: str) -> str:
    return role if role.endswith("s") else role + "s"


def limits_for(
    roles: Iterable[str],
    profiles: Sequence[Any],
    accounting_groups: Mapping[str, str],
    max_jobs: Mapping[str, int],
    default_max_jobs: int,
) -> UserLimits:
    """The limits of a user with ``roles``: the largest GPUs and runtime among the ``condor`` profiles those
    roles may start, the accounting groups of those roles (in ``accounting_groups``' order), and the most jobs
    per submission any of those roles has (``max_jobs``, else ``default_max_jobs``)."""
    roles = tuple(dict.fromkeys(str(r) for r in roles))
    condor = [p for p in profiles if _get(p, "kind") == "condor" and set(map(str, _get(p, "roles"))) & set(roles)]
    if not condor:
        return UserLimits(roles=roles)
    # Only roles that may start a condor profile run jobs; a guest who is also a student is charged as one.
    runners = [r for r in roles if any(r in map(str, _get(p, "roles")) for p in condor)]
    groups = tuple(dict.fromkeys(g for role, g in accounting_groups.items() if str(role) in runners))
    return UserLimits(
        roles=roles,
        groups=groups,
        gpus=max(int(_get(p, "gpus") or 0) for p in condor),
        runtime_seconds=max(math.ceil(float(_get(p, "runtime"))) for p in condor),
        jobs=max(int(max_jobs.get(r, default_max_jobs)) for r in runners),
    )


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name)


def render(users: Mapping[str, UserLimits]) -> str:
    """The map file of ``users`` (sorted, so the same users always give the same text)."""
    lines = ["# condorhub: the pool's users as the hub last saw them at login (written by the hub; do not edit)"]
    for user in sorted(users):
        if not _USER.fullmatch(user):
            raise UserMapError(f"{user!r} cannot be a pool user name (letters, digits, _ . -)")
        for submap, name, value in users[user].lines(user):
            if not _VALUE.fullmatch(value):
                raise UserMapError(f"{value!r} ({submap} of {user}) cannot be a map value")
            lines.append(f"{submap} {name} {value}")
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict[str, dict[str, str]]:
    """user → {submap: value} of a map file :func:`render` wrote (other lines are ignored)."""
    users: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#") and fields[0] in SUBMAPS and _USER.fullmatch(fields[1]):
            users.setdefault(fields[1], {})[fields[0]] = fields[2]
    return users


def _limits_from(entry: Mapping[str, str]) -> UserLimits:
    roles = tuple(r for r in entry.get("roles", "").split(",") if r)
    groups = tuple(g for g in entry.get("*", "").split(",") if g)
    return UserLimits(
        roles=roles,
        groups=groups,
        gpus=int(entry.get("gpus", 0)),
        runtime_seconds=int(entry.get("runtime", 0)),
        jobs=int(entry.get("jobs", 0)),
    )


class UserMapWriter:
    """Keeps one user map file current: :meth:`update` puts one user's limits in and tells the schedd.

    :param path: the map file the schedd reads (CLASSAD_USER_MAPFILE_Condorhub). It must exist (the htcondor
        role creates it empty, root-owned and readable by condor only); each write keeps its owner and mode.
    :param reconfig_command: argv that has the schedd re-read its configuration and the map.
    :param timeout: seconds the reconfig command may take.
    """

    def __init__(
        self, path: str | os.PathLike[str], reconfig_command: Sequence[str] = DEFAULT_RECONFIG_COMMAND, timeout=30.0
    ) -> None:
        self.path = Path(path)
        self.reconfig_command = list(reconfig_command)
        self.timeout = timeout
        self._lock = threading.Lock()
        # Reconfigs in groups: writes done (a counter), the last write a finished reconfig covers, one running.
        self._reconfig_done = threading.Condition()
        self._written = 0
        self._covered = 0
        self._reconfiguring = False
        self._reconfig_task: asyncio.Future | None = None  # update_async's, on the hub's loop

    def __deepcopy__(self, memo: dict) -> UserMapWriter:
        # The hub's configuration is deep-copied by traitlets; the writer (and its lock) stays one per process.
        return self

    def update(self, user: str, limits: UserLimits) -> bool:
        """Put ``user``'s lines into the map; returns True when the file changed (and the schedd was told)."""
        write = self._write(user, limits)
        if write:
            self._reconfig_covering(write)
        return bool(write)

    async def update_async(self, user: str, limits: UserLimits) -> bool:
        """:meth:`update` for the hub's event loop. A writer waiting for the reconfig holds no thread: with a
        thread each (the loop's default executor has a handful), a class logging in at once queued behind
        them, its LDAP logins and spawns too (benchmarks/class_scale.py)."""
        write = await asyncio.to_thread(self._write, user, limits)
        while write and self._covered < write:
            if self._reconfig_task is None or self._reconfig_task.done():
                self._reconfig_task = asyncio.ensure_future(self._reconfig_async(self._written))
            # shielded: a login given up (client gone) does not cancel the reconfig others wait for
            await asyncio.shield(self._reconfig_task)
        return bool(write)

    async def _reconfig_async(self, target: int) -> None:
        await asyncio.to_thread(self.reconfig)
        with self._reconfig_done:
            self._covered = max(self._covered, target)

    def _write(self, user: str, limits: UserLimits) -> int:
        """Merge ``user``'s lines into the file: the number of this write, 0 if nothing changed."""
        with self._lock, self._file_lock():
            try:
                current = self.path.read_text()
                st = self.path.stat()
            except FileNotFoundError:
                raise UserMapError(
                    f"the pool's user map {self.path} does not exist; the htcondor role creates it (empty, "
                    "owned by root, group condor, mode 0640) on the submit host"
                ) from None
            users = {name: _limits_from(entry) for name, entry in parse(current).items()}
            users[user] = limits
            text = render(users)
            if text == current:
                return 0
            self._replace(text, st)
            with self._reconfig_done:
                self._written += 1
                return self._written

    def _reconfig_covering(self, write: int) -> None:
        """Return once a reconfig that started after write number ``write`` has finished.

        A class logging in at once changes the map once per student; one reconfig per change ran them one
        after the other, each login waiting for all before it (50 logins in 10 s: the last took 13.8 s,
        benchmarks/class_scale.py). A reconfig that starts after several writes makes the schedd read all of
        them, so the writers that arrive while one runs share the next one (group commit).
        """
        with self._reconfig_done:
            while self._covered < write:
                if self._reconfiguring:
                    self._reconfig_done.wait()
                    continue
                self._reconfiguring = True
                target = self._written  # every write finished so far, this one included
                ok = False
                self._reconfig_done.release()
                try:
                    self.reconfig()
                    ok = True
                finally:
                    self._reconfig_done.acquire()
                    self._reconfiguring = False
                    if ok:
                        self._covered = max(self._covered, target)
                    self._reconfig_done.notify_all()

    def _file_lock(self):
        # Several writers (two hub processes, a test) may share the file: one at a time, whole file.
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        return _Flock(fd)

    def _replace(self, text: str, st: os.stat_result) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, st.st_mode & 0o7777)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            # The schedd reloads a map only if its mtime (whole seconds) differs from the one it read.
            stamp = max(int(time.time()), int(st.st_mtime) + 1)
            os.utime(tmp, (stamp, stamp))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def reconfig(self) -> None:
        """Have the schedd re-read its configuration (and so the map), with the host's own HTCondor
        configuration: the hub's CONDOR_CONFIG (IDTOKENS, its token) is not passed on."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDOR_", "_CONDOR_"))}
        try:
            proc = subprocess.run(
                self.reconfig_command,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UserMapError(f"`{' '.join(self.reconfig_command)}` failed: {exc}") from exc
        if proc.returncode != 0:
            raise UserMapError(
                f"`{' '.join(self.reconfig_command)}` exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-500:]}"
            )


class _Flock:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> _Flock:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


@dataclass
class LoginHook:
    """JupyterHub ``Authenticator.post_auth_hook``: at each login, the user's roles (auth state, filled by
    condorhub's LDAP authenticator) become their lines in the pool's map before the login completes, so the
    next submit already follows them. A failure is logged and does not refuse the login: the schedd then
    applies the lines it has (or refuses an unknown user, saying so)."""

    writer: UserMapWriter
    profiles: Sequence[Any]
    accounting_groups: Mapping[str, str]
    max_jobs: Mapping[str, int]
    default_max_jobs: int

    def __deepcopy__(self, memo: dict) -> LoginHook:
        return self  # see UserMapWriter.__deepcopy__

    async def __call__(self, authenticator: Any, handler: Any, authentication: dict) -> dict:
        name = authentication.get("name", "")
        roles = (authentication.get("auth_state") or {}).get("roles") or []
        limits = limits_for(roles, self.profiles, self.accounting_groups, self.max_jobs, self.default_max_jobs)
        logger = getattr(authenticator, "log", None) or log  # the hub's log, where ops look
        try:
            changed = await self.writer.update_async(name, limits)
        except (UserMapError, OSError, ValueError) as exc:
            logger.error("pool user map: %s not updated for roles %s: %s", name, list(roles), exc)
        else:
            if changed:
                logger.info("pool user map: %s now %s", name, limits)
        return authentication


def configure_user_map(c: Any, site: Any) -> None:
    """Hook the map into the hub's configuration ``c`` when the site file names one (``htcondor.user_map``)."""
    condor = site.htcondor
    if condor is None or condor.user_map is None:
        return
    from condorhub.schema import DEFAULT_MAX_JOBS_PER_USER

    writer = UserMapWriter(condor.user_map.file, condor.user_map.reconfig_command)
    c.Authenticator.post_auth_hook = LoginHook(
        writer=writer,
        profiles=list(site.profiles),
        accounting_groups={str(role): group for role, group in condor.accounting_groups.items()},
        max_jobs={str(role): n for role, n in condor.max_jobs_per_user.items()},
        default_max_jobs=DEFAULT_MAX_JOBS_PER_USER,
    )
