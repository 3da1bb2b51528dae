"""The demo's people known to NSS on this machine, the demo's login node: libnss-extrausers, filled from the
demo directory's data.

A login-node server runs as the user's LDAP uid; without an NSS entry for it, ``id`` and bash's prompt say
"I have no name!". Production login nodes run the ldap_client role (nslcd). The demo does not: nslcd on the
developer's own machine would point every NSS lookup at the demo's slapd, and with the demo stopped each lookup
(``ls -l``, ``sudo``, the test suite's) would wait for a connect timeout. extrausers reads two local files
(``/var/lib/extrausers/passwd`` and ``group``), so nothing ever waits; the users are the demo's own fixed ones.

``enable_extrausers`` writes the files and adds ``extrausers`` to the passwd and group lines of
``/etc/nsswitch.conf``, marking both as the demo's; ``disable_extrausers`` (``./setup.sh demo-down``) removes
exactly what it added. The test suite's directory has the same uids, so while the demo is up the tests' users
have names too; nothing of the tests depends on it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .directory import DEMO_GID_NUMBER, DEMO_POSIX_GROUP, DemoUser

__all__ = ["EXTRAUSERS_DIR", "NSSWITCH", "disable_extrausers", "enable_extrausers", "extrausers_available"]

NSSWITCH = Path("/etc/nsswitch.conf")
EXTRAUSERS_DIR = Path("/var/lib/extrausers")
#: Written beside the files: they are the demo's, so ``disable_extrausers`` may remove them.
MARKER = ".condorhub-demo"
#: Ends the nsswitch lines the demo changed, so that only those are changed back.
TAG = "# condorhub demo (devstack/nss.py)"
DATABASES = ("passwd", "group")


def extrausers_available() -> bool:
    """Whether glibc finds the extrausers module (Debian's libnss-extrausers; ``./setup.sh demo`` installs it)."""
    return any(Path(d, "libnss_extrausers.so.2").exists()
               for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                         "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"))


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)  # a reader never sees half a file


def enable_extrausers(users: Iterable[DemoUser], home_base: str, *, nsswitch: Path = NSSWITCH,
                      folder: Path = EXTRAUSERS_DIR, check_module: bool = True) -> str:
    """The demo's users and their posix group in extrausers, and extrausers in nsswitch.conf; what it did."""
    if check_module and not extrausers_available():
        return ("NSS: libnss-extrausers is not installed, so a login-node terminal says 'I have no name!' "
                "(apt-get install libnss-extrausers; ./setup.sh demo does)")
    users = list(users)
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    if any((folder / db).exists() for db in DATABASES) and not (folder / MARKER).exists():
        return f"NSS: {folder} holds someone else's users; left as it is (the demo's users have no names)"
    (folder / MARKER).write_text("written by condorhub's demo (devstack/nss.py); ./setup.sh demo-down removes it\n")
    _write(folder / "passwd", "".join(
        f"{u.uid}:x:{u.uid_number}:{u.gid_number}:{u.display_name}:{u.home_under(home_base)}:{u.login_shell}\n"
        for u in users))
    members = ",".join(u.uid for u in users if u.gid_number == DEMO_GID_NUMBER)
    _write(folder / "group", f"{DEMO_POSIX_GROUP}:x:{DEMO_GID_NUMBER}:{members}\n")
    text = nsswitch.read_text()
    lines = []
    for line in text.splitlines():
        match = re.match(rf"^({'|'.join(DATABASES)}):(\s+)(.*)$", line)
        if match and "extrausers" not in match.group(3):
            line = f"{match.group(1)}:{match.group(2)}{match.group(3).rstrip()} extrausers {TAG}"
        lines.append(line)
    new = "\n".join(lines) + "\n"
    if new != text:
        _write(nsswitch, new)
    return f"NSS: the demo's {len(users)} users resolve on this machine (extrausers in {nsswitch})"


def disable_extrausers(*, nsswitch: Path = NSSWITCH, folder: Path = EXTRAUSERS_DIR) -> str:
    """Undo :func:`enable_extrausers`: the tagged nsswitch lines back as they were, the demo's files removed."""
    done = []
    if nsswitch.exists():
        text = nsswitch.read_text()
        new = "\n".join(line.replace(f" extrausers {TAG}", "") for line in text.splitlines()) + "\n"
        if new != text:
            _write(nsswitch, new)
            done.append(f"extrausers out of {nsswitch}")
    if (folder / MARKER).exists():
        for name in (*DATABASES, MARKER):
            (folder / name).unlink(missing_ok=True)
        done.append(f"the demo's users out of {folder}")
    return "NSS: " + ("; ".join(done) if done else "nothing of the demo's to undo")
