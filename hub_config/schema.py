"""The site file's schema: one strict, typed model of everything a site configures.

Data flows one way: site file (YAML) → :class:`SiteConfig` (validated here) → JupyterHub traits
(:mod:`condorhub.traits`). Every model forbids unknown keys, so a typo stops the hub with a message that
names the key (see :mod:`condorhub.site` for how validation errors are worded).

Field descriptions double as the reference documentation of the site file: ``condorhub config schema``
prints them as JSON Schema, and ``hub_config/site.example.yaml`` shows every section with comments.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator


class Role(StrEnum):
    """What a person is to condorhub; decides which profiles they may start and what they may see."""

    student = "student"
    researcher = "researcher"
    instructor = "instructor"
    guest = "guest"
    admin = "admin"


class Strict(BaseModel):
    """Base of every section: unknown keys are errors, and values are not silently coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)


# A memory size as HTCondor and JupyterHub write it: 512M, 4G, 1.5G. Bare numbers are bytes.
MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_memory(value: str | int) -> int:
    """Bytes in a memory size such as ``"4G"``; raises ValueError naming the accepted forms."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("memory must be positive")
        return value
    match = MEMORY_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a memory size; write e.g. 512M, 4G or 1.5G")
    number, unit = match.groups()
    size = int(float(number) * _UNITS[unit.upper()])
    if size <= 0:
        raise ValueError("memory must be positive")
    return size


MemorySize = Annotated[
    str,
    Field(
        pattern=MEMORY_RE.pattern,
        description="A memory size: a number with an optional unit K, M, G or T (powers of 1024), e.g. 4G.",
    ),
]


class TlsSettings(Strict):
    strategy: Literal["before_bind", "on_connect", "insecure"] = Field(
        "before_bind",
        description=(
            "How the connection to the LDAP server is encrypted: `before_bind` uses StartTLS on the plain "
            "port (389) before the password is sent, `on_connect` speaks LDAPS (port 636). `insecure` sends "
            "passwords in clear text and is only for a throw-away test directory on loopback."
        ),
    )
    ca_file: Path | None = Field(
        None,
        description=(
            "PEM file with the CA certificate(s) that signed the LDAP server's certificate. Unset: the "
            "system trust store. Certificates are always verified unless `strategy` is `insecure`."
        ),
    )


class GroupSettings(Strict):
    membership_attribute: str = Field(
        "memberOf",
        description=(
            "Attribute of the user's entry that lists the DNs of their groups (OpenLDAP's memberof overlay "
            "and Active Directory both provide `memberOf`). Used unless `search_base` is set."
        ),
    )
    search_base: str | None = Field(
        None,
        description=(
            "Where to search for groups when the directory has no memberOf attribute; groups whose "
            "`member` is the user's DN or whose `memberUid` is their uid are theirs."
        ),
    )


class LookupSettings(Strict):
    search_user: str = Field(description="DN of a service account that may search for users.")
    search_password_file: Path = Field(
        description=(
            "File (readable by the hub only, mode 0600) holding that account's password. A file rather than "
            "the password itself, so the site file can be world-readable and kept in version control."
        ),
    )
    filter: str = Field(
        "({login_attr}={login})",
        description="Search filter; `{login_attr}` is `user_attribute`, `{login}` the escaped login name.",
    )


class LdapSettings(Strict):
    server_address: str = Field(description="Host name or IP address of the LDAP server.")
    server_port: int | None = Field(
        None, ge=1, le=65535, description="Port; unset means 389, or 636 with `tls.strategy: on_connect`."
    )
    tls: TlsSettings = Field(default_factory=TlsSettings)
    connect_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds to wait for the LDAP server to accept a connection."
    )
    receive_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds to wait for any single LDAP answer (bind, search)."
    )
    bind_dn_template: list[str] = Field(
        default_factory=list,
        description=(
            "DN patterns to bind as, `{username}` replaced by the escaped login name, e.g. "
            "`uid={username},ou=people,dc=example,dc=org`. Either this or `lookup` must be set."
        ),
    )
    lookup: LookupSettings | None = Field(
        None, description="Find the user's DN with a search by a service account instead of a template."
    )
    user_search_base: str = Field(description="Subtree holding the user entries, e.g. `ou=people,dc=example,dc=org`.")
    user_attribute: str = Field("uid", description="Attribute that holds the login name.")
    valid_username_regex: str = Field(
        r"^[a-z_][a-z0-9_.-]{0,31}$",
        description=(
            "Login names must match this (after lower-casing). The default is the POSIX user-name rule; it "
            "also rejects every character with a meaning in LDAP filters or DNs."
        ),
    )
    groups: GroupSettings = Field(default_factory=GroupSettings)

    @model_validator(mode="after")
    def _one_way_to_find_the_user(self):
        if not self.bind_dn_template and self.lookup is None:
            raise ValueError("set either `bind_dn_template` or `lookup`, so condorhub can find the user's DN")
        return self

    @field_validator("valid_username_regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a valid regular expression: {err}") from None
        return value


class RoleSettings(Strict):
    groups: dict[str, Role] = Field(
        default_factory=dict,
        description=(
            "LDAP group name (the group's cn) → condorhub role. A person in several mapped groups has all "
            "those roles. Allowed roles: student, researcher, instructor, guest, admin."
        ),
    )
    default: Role | None = Field(
        None,
        description=(
            "Role of people in none of the mapped groups. Unset (the default): such people cannot log in."
        ),
    )


class ThrottleSettings(Strict):
    free_failures: int = Field(
        5, ge=1, le=100, description="Failed logins allowed per user name and per client address before slowing down."
    )
    window_seconds: float = Field(
        900, gt=0, description="Failures older than this are forgotten."
    )
    max_delay_seconds: float = Field(
        60,
        gt=0,
        le=3600,
        description=(
            "After the free failures each further attempt must wait a delay that doubles from 2 s up to "
            "this. It slows password guessing without locking the real user out for long."
        ),
    )


class LoginNodeProfile(Strict):
    """A server on the hub machine itself, run as the user's own Unix account."""

    kind: Literal["login_node"] = "login_node"
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="Short identifier used in forms and the API.")
    display_name: str = Field(description="What the spawn form shows.")
    description: str = Field("", description="One line under the name in the spawn form.")
    roles: list[Role] = Field(min_length=1, description="Roles that may start this profile.")
    cpus: float = Field(1, gt=0, le=256, description="CPU cores (a guideline on the login node, shown to the user).")
    memory: MemorySize = Field("2G", description="Memory limit (a guideline on the login node).")


Profile = Annotated[LoginNodeProfile, Field(discriminator="kind")]


class HubSettings(Strict):
    bind_url: AnyHttpUrl = Field(
        "http://127.0.0.1:8000",
        description="Where people reach condorhub (the proxy's public address), including any URL prefix.",
    )
    hub_bind_url: AnyHttpUrl = Field(
        "http://127.0.0.1:8081",
        description=(
            "Where the hub itself listens. Jupyter servers running as HTCondor jobs call back here, so on a "
            "cluster this must be an address the execute nodes can reach."
        ),
    )
    proxy_api_url: AnyHttpUrl = Field(
        "http://127.0.0.1:8001",
        description=(
            "Where configurable-http-proxy's REST API listens (the hub starts the proxy and adds routes "
            "there). Change it when several hubs share a machine."
        ),
    )
    state_dir: Path = Field(
        Path("/var/lib/condorhub"),
        description=(
            "Directory for the hub's database, cookie secret and auth-state encryption key; created with "
            "mode 0700."
        ),
    )
    admin_users: list[str] = Field(
        default_factory=list,
        description="User names that are always hub admins, in addition to members of groups mapped to `admin`.",
    )
    singleuser_env: Path = Field(
        Path("/opt/condorhub/venv"),
        description=(
            "Python environment (virtualenv prefix) that provides `jupyterhub-singleuser` and JupyterLab for "
            "servers on the login node. Must be readable by every user."
        ),
    )
    default_url: str = Field("/lab", description="Page a new server opens on.")
    start_timeout: int = Field(120, ge=10, le=3600, description="Seconds a server may take to start.")


class SiteConfig(Strict):
    """The whole site file."""

    hub: HubSettings = Field(default_factory=HubSettings)
    ldap: LdapSettings
    roles: RoleSettings = Field(default_factory=RoleSettings)
    login_throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)
    profiles: list[Profile] = Field(
        min_length=1,
        description="Resource profiles people can choose from, in the order the spawn form shows them.",
    )

    @field_validator("profiles")
    @classmethod
    def _unique_slugs(cls, profiles: list[LoginNodeProfile]) -> list[LoginNodeProfile]:
        seen: set[str] = set()
        for profile in profiles:
            if profile.slug in seen:
                raise ValueError(f"profile slug {profile.slug!r} is used twice; slugs must be unique")
            seen.add(profile.slug)
        return profiles

    @model_validator(mode="after")
    def _every_role_can_start_something(self):
        # A role that exists in the mapping but may start no profile would give its members a hub
        # with an empty spawn form; catch that at start rather than in front of a class.
        offered = {role for profile in self.profiles for role in profile.roles}
        mapped = set(self.roles.groups.values()) | ({self.roles.default} if self.roles.default else set())
        stranded = sorted(mapped - offered)
        if stranded:
            raise ValueError(
                f"role(s) {', '.join(stranded)} may start no profile; add them to some profile's `roles`"
            )
        return self
