"""The demo and test directory: who the users are, and the LDIF that puts them into OpenLDAP.

The data is plain Python so that tests can reuse it (and override passwords) while the demo
loads exactly the same people. Nothing here talks to a server: :func:`directory_ldif` only
builds text, which :meth:`devstack.slapd.OpenLDAPServer.add_ldif` then adds through the
running server (never with slapadd, which would bypass the memberof overlay).

Layout under the suffix::

    ou=people        one inetOrgPerson + posixAccount per user, userPassword as {SSHA}
    ou=groups        groupOfNames per role group (students, researchers, ...), member = user DNs
    ou=posixgroups   posixGroup "condorhub" (gidNumber 10000), the primary group of every user

Demo passwords are deliberately simple and documented (``<uid>-pw``, e.g. ``alice-pw``): this
directory exists for a throw-away demo and the test suite, never for production.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Iterable, Sequence

__all__ = [
    "DEMO_GID_NUMBER",
    "DEMO_POSIX_GROUP",
    "DEMO_USERS",
    "GROUPS",
    "GROUP_ROLES",
    "DemoUser",
    "directory_ldif",
    "newcomers_ldif",
    "person_ldif",
    "ssha_password",
    "user_dn",
]

#: The groupOfNames entries created under ou=groups; condorhub's group_roles maps their cn to roles.
GROUPS: tuple[str, ...] = ("students", "researchers", "instructors", "guests", "admins")

#: The demo site's mapping of those groups to condorhub roles (site file `roles.groups`).
GROUP_ROLES: dict[str, str] = {
    "students": "student",
    "researchers": "researcher",
    "instructors": "instructor",
    "guests": "guest",
    "admins": "admin",
}

#: Name and gidNumber of the posixGroup every demo user has as primary group.
DEMO_POSIX_GROUP = "condorhub"
DEMO_GID_NUMBER = 10000


@dataclasses.dataclass(frozen=True)
class DemoUser:
    """One person in the demo directory."""

    uid: str
    password: str
    uid_number: int
    gid_number: int
    #: Home directory as stored in the directory; :func:`directory_ldif` derives it from its
    #: ``home_base`` when this is empty, so tests can point homes at a scratch folder.
    home: str
    #: cn of the groupOfNames under ou=groups the user belongs to (one of :data:`GROUPS`).
    group: str
    display_name: str
    login_shell: str = "/bin/bash"

    def __repr__(self) -> str:
        # Keep the password out of reprs, tracebacks and pytest's assertion rewriting output.
        return (
            f"DemoUser(uid={self.uid!r}, uid_number={self.uid_number}, group={self.group!r}, "
            f"home={self.home!r})"
        )

    def home_under(self, home_base: str) -> str:
        """The home directory, either as given or ``<home_base>/<uid>``."""
        return self.home or f"{home_base.rstrip('/')}/{self.uid}"


#: The demo users. Passwords follow the documented ``<uid>-pw`` pattern.
DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("alice", "alice-pw", 10001, DEMO_GID_NUMBER, "", "students", "Alice Student"),
    DemoUser("bob", "bob-pw", 10002, DEMO_GID_NUMBER, "", "researchers", "Bob Researcher"),
    DemoUser("carol", "carol-pw", 10003, DEMO_GID_NUMBER, "", "instructors", "Carol Instructor"),
    DemoUser("dave", "dave-pw", 10004, DEMO_GID_NUMBER, "", "guests", "Dave Guest"),
    # A hub admin (group admins -> role admin -> JupyterHub admin): the admin page, every server.
    DemoUser("heidi", "heidi-pw", 10005, DEMO_GID_NUMBER, "", "admins", "Heidi Admin"),
)


def ssha_password(password: str, salt: bytes | None = None) -> str:
    """Hash ``password`` the way OpenLDAP's ``{SSHA}`` scheme expects: base64(SHA1(pw + salt) + salt).

    A fresh random 8-byte salt is used unless one is given (tests of the format only), so two
    users with the same password still get different hashes and the directory never holds
    plaintext.
    """
    if salt is None:
        salt = os.urandom(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def user_dn(uid: str, suffix: str) -> str:
    """DN of a user entry in the demo layout."""
    return f"uid={uid},ou=people,{suffix}"


def _ldif_value(attribute: str, value: str) -> str:
    # LDIF needs base64 ("::") for values that are not "safe strings" (RFC 2849), e.g. ones
    # with non-ASCII characters or a leading space/colon/less-than.
    safe = value.isascii() and value == value.strip() and not value.startswith((":", "<"))
    safe = safe and all(32 <= ord(c) < 127 for c in value)
    if safe:
        return f"{attribute}: {value}"
    return f"{attribute}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def _entry(dn: str, attributes: Iterable[tuple[str, str]]) -> str:
    lines = [_ldif_value("dn", dn)]
    lines += [_ldif_value(name, value) for name, value in attributes]
    return "\n".join(lines) + "\n"


def person_ldif(user: DemoUser, suffix: str, home_base: str = "/home") -> str:
    """LDIF of one user's entry under ou=people (inetOrgPerson + posixAccount)."""
    given, _, family = user.display_name.partition(" ")
    return _entry(
        user_dn(user.uid, suffix),
        [
            ("objectClass", "inetOrgPerson"),
            ("objectClass", "posixAccount"),
            ("uid", user.uid),
            ("cn", user.display_name),
            ("sn", family or user.display_name),
            ("givenName", given),
            ("displayName", user.display_name),
            ("mail", f"{user.uid}@condorhub.test"),
            ("uidNumber", str(user.uid_number)),
            ("gidNumber", str(user.gid_number)),
            ("homeDirectory", user.home_under(home_base)),
            ("loginShell", user.login_shell),
            ("userPassword", ssha_password(user.password)),
        ],
    )


def newcomers_ldif(users: Sequence[DemoUser], suffix: str, home_base: str = "/home") -> tuple[str, str]:
    """For a directory an earlier demo made, before ``users`` joined it: their entries (to add) and their
    memberships of the role groups and the posix group (an ``ldapmodify`` LDIF). Both empty without users."""
    people = "\n".join(person_ldif(u, suffix, home_base) for u in users)
    changes = [
        f"dn: cn={u.group},ou=groups,{suffix}\nchangetype: modify\nadd: member\nmember: {user_dn(u.uid, suffix)}\n"
        for u in users
    ] + [
        f"dn: cn={DEMO_POSIX_GROUP},ou=posixgroups,{suffix}\nchangetype: modify\nadd: memberUid\nmemberUid: {u.uid}\n"
        for u in users if u.gid_number == DEMO_GID_NUMBER
    ]
    return people, "\n".join(changes)


def directory_ldif(
    suffix: str,
    users: Sequence[DemoUser] = DEMO_USERS,
    home_base: str = "/home",
) -> str:
    """LDIF for ou=people, ou=groups and ou=posixgroups below ``suffix`` (which must exist).

    Add it through a running server so that the memberof overlay fills each user's ``memberOf``
    from the groups' ``member`` values.
    """
    admin_dn = f"cn=admin,{suffix}"
    entries = [
        _entry(f"ou=people,{suffix}", [("objectClass", "organizationalUnit"), ("ou", "people")]),
        _entry(f"ou=groups,{suffix}", [("objectClass", "organizationalUnit"), ("ou", "groups")]),
        _entry(
            f"ou=posixgroups,{suffix}",
            [("objectClass", "organizationalUnit"), ("ou", "posixgroups")],
        ),
    ]
    entries += [person_ldif(user, suffix, home_base) for user in users]

    gid_numbers = sorted({user.gid_number for user in users} | {DEMO_GID_NUMBER})
    for gid_number in gid_numbers:
        name = DEMO_POSIX_GROUP if gid_number == DEMO_GID_NUMBER else f"condorhub-{gid_number}"
        members = [("memberUid", u.uid) for u in users if u.gid_number == gid_number]
        entries.append(
            _entry(
                f"cn={name},ou=posixgroups,{suffix}",
                [("objectClass", "posixGroup"), ("cn", name), ("gidNumber", str(gid_number))]
                + members,
            )
        )

    unknown = sorted({u.group for u in users} - set(GROUPS))
    if unknown:
        raise ValueError(f"users name groups that the demo directory does not have: {unknown}; "
                         f"use one of {list(GROUPS)}")
    for group in GROUPS:
        members = [user_dn(u.uid, suffix) for u in users if u.group == group]
        # groupOfNames requires at least one member; an empty group holds the admin DN, which
        # is not a person (memberof ignores it: the rootDN has no entry of its own).
        entries.append(
            _entry(
                f"cn={group},ou=groups,{suffix}",
                [("objectClass", "groupOfNames"), ("cn", group)]
                + [("member", dn) for dn in (members or [admin_dn])],
            )
        )
    return "\n".join(entries)
