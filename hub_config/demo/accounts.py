"""Accounts the demo and the test pool need besides the people: service accounts and home folders."""

from __future__ import annotations

import os
import secrets
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


def ensure_homes(users: Iterable[DemoUser], home_base: str | os.PathLike) -> None:
    """Create the users' home folders (the directory only names them), owned by their LDAP uid/gid."""
    for user in users:
        home = Path(user.home_under(str(home_base)))
        if not home.exists():
            home.mkdir(mode=0o755, parents=True)
            os.chown(home, user.uid_number, user.gid_number)
