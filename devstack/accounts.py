"""Accounts the demo and the test pool need besides the people: service accounts and home folders."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .directory import DemoUser, ssha_password
from .slapd import OpenLDAPServer


def ensure_service_account(server: OpenLDAPServer, name: str, description: str) -> tuple[str, str]:
    """A read-only bind account ``cn=<name>,<suffix>`` with a fresh password; returns (dn, password).

    The directory lets only bound users read entries, so NSS on the GPU nodes (nslcd) binds as such an
    account, as on production nodes. The password is set anew each time (a re-added entry would keep its
    first one), so the caller always holds the current one.
    """
    dn = f"cn={name},{server.suffix}"
    password = secrets.token_urlsafe(16)
    server.add_ldif(
        f"dn: {dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: {name}\ndescription: {description}\nuserPassword: {ssha_password(password)}\n",
        ignore_existing=True,
    )
    subprocess.run(
        ["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", server.ldapi_uri],
        input=f"dn: {dn}\nchangetype: modify\nreplace: userPassword\nuserPassword: {ssha_password(password)}\n",
        text=True,
        capture_output=True,
        check=True,
        env={**os.environ, "LDAPNOINIT": "1"},
    )
    return dn, password


#: Mode of the home folders condorhub creates: the user's alone. The demo's users (like many sites') share one
#: primary group, so 0750 would still let every other user read them.
HOME_MODE = 0o700

#: The mode earlier versions created the demo's homes with (readable by everyone); see :func:`ensure_homes`.
_OLD_HOME_MODE = 0o755


def ensure_homes(users: Iterable[DemoUser], home_base: str | os.PathLike) -> None:
    """Create the users' home folders (the directory only names them), owned by their LDAP uid/gid, mode 0700.

    A home left by an earlier demo or test run with the mode those created (0755, owned by the user) is made
    0700 too; a home with any other mode is the user's choice and stays as it is. Links are never followed.
    """
    for user in users:
        home = Path(user.home_under(str(home_base)))
        if not os.path.lexists(home):
            home.parent.mkdir(parents=True, exist_ok=True)
            home.mkdir(mode=HOME_MODE)
            os.chmod(home, HOME_MODE)  # whatever the umask
            os.chown(home, user.uid_number, user.gid_number)
            continue
        try:
            fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # a link or not a folder: not one condorhub made
        try:
            st = os.fstat(fd)
            if st.st_uid == user.uid_number and stat.S_IMODE(st.st_mode) == _OLD_HOME_MODE:
                os.fchmod(fd, HOME_MODE)
        finally:
            os.close(fd)


def ensure_system_account(name: str) -> tuple[int, int]:
    """A local system account without home or shell (as the jupyterhub role creates the course service
    account, ``condorhub-courses``); returns its (uid, gid)."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            check=True, capture_output=True, text=True,
        )
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def copy_into_home_as(user: DemoUser, home_base: str | os.PathLike, source: Path, folder: str) -> bool:
    """Copy ``source`` (a folder root may read, e.g. of the checkout) to ``~user/folder``, written by a ``tar``
    running as the user: root reads only its own files and never writes into a home the user controls
    (a link planted there would redirect root's writes). Returns False, copying nothing, when ``folder``
    exists already: from then on it is the user's."""
    home = Path(user.home_under(str(home_base)))
    if os.path.lexists(home / folder):
        return False
    pack = subprocess.Popen(["tar", "-C", str(source), "--exclude=.ipynb_checkpoints", "-cf", "-", "."],
                            stdout=subprocess.PIPE)
    unpack = subprocess.run(
        ["/bin/sh", "-c", 'mkdir -p -- "$1" && tar -C "$1" --no-same-owner --no-same-permissions -xf -', "sh",
         str(home / folder)],
        stdin=pack.stdout, user=user.uid_number, group=user.gid_number, extra_groups=[], cwd=str(home),
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)}, capture_output=True, text=True,
    )
    assert pack.stdout is not None
    pack.stdout.close()
    if pack.wait() != 0 or unpack.returncode != 0:
        raise RuntimeError(f"copying {source} into {home / folder} as {user.uid} failed: {unpack.stderr.strip()}")
    return True
