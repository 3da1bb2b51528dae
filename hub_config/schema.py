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
from ipaddress import ip_network
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)


class Role(StrEnum):
    """What a person is to condorhub; decides which profiles they may start and what they may see."""

    student = "student"
    researcher = "researcher"
    instructor = "instructor"
    guest = "guest"
    admin = "admin"


class Strict(BaseModel):
    """Base of every section: unknown keys are errors, and values are not silently coerced across types."""

    # validate_default: defaults go through the same parsing as site values (URLs become URL objects).
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True, validate_default=True)


def default_of(model: type[BaseModel], field: str) -> Any:
    """The schema's default of ``model.field``, normalised as a site value would be (``"5m"`` → 300.0).

    The schema owns the defaults: trait classes (the authenticator, the HTCondor spawner and queue)
    take theirs from here instead of restating them, so a hub configured in Python and one configured
    by a site file behave the same (tests/test_drift.py checks every pair).
    """
    info = model.model_fields[field]
    as_written = info.get_default(call_default_factory=True)
    annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    return TypeAdapter(annotation).validate_python(as_written)


def written(text: str) -> Any:
    """A default as a site file writes it (``"5m"``, ``"4G"``), for a field that holds seconds or bytes.

    ``validate_default`` parses it like a site value, so the model holds the number while the reference
    documentation and ``condorhub config schema`` show the default in the form people write.
    """
    return text


# A memory size as HTCondor and JupyterHub write it: 512M, 4G, 1.5G. Bare numbers are bytes.
MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_memory(value: str | int) -> int:
    """Bytes in a memory size such as ``"4G"``; raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("a memory size must be a number of bytes or a text like 4G")
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


def format_memory(size: int) -> str:
    """``4294967296`` → ``"4G"``: the largest unit that writes the size exactly (or to one decimal)."""
    for unit in ("T", "G", "M", "K"):
        scaled = size / _UNITS[unit]
        if scaled >= 1 and (scaled.is_integer() or scaled >= 10):
            return f"{scaled:.0f}{unit}"
        if scaled >= 1:
            return f"{scaled:.1f}{unit}"
    return str(size)


#: A memory size in the site file (``4G``, ``512M``, a number of bytes); the model holds bytes (int).
MemorySize = Annotated[
    int,
    BeforeValidator(parse_memory),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": MEMORY_RE.pattern}, {"type": "integer", "minimum": 1}],
            "x-condorhub-kind": "memory size",
            "description": "A memory size: a number with an optional unit K, M, G or T (powers of 1024), e.g. 4G; "
            "a bare number is bytes.",
        }
    ),
]

# A duration as people write it: 90m, 8h, 1d12h, 3600 or 2.5 (seconds), or HH:MM:SS as batch systems print it.
DURATION_RE = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)|(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?|(\d+):(\d\d):(\d\d))\s*$"
)


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration such as ``"8h"``, ``"1d12h"``, ``"90m"``, ``"02:30:00"``, ``5400`` or ``2.5``.

    Zero is a duration (a setting that allows it, e.g. to switch something off, says so with ``ge=0``);
    negative ones are not.
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a text like 8h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = DURATION_RE.match(str(value))
        if not match or not str(value).strip():
            raise ValueError(f"{value!r} is not a duration; write e.g. 90m, 8h, 1d12h, 02:30:00 or 5400 (seconds)")
        plain, days, hours, minutes, secs, hh, mm, ss = match.groups()
        if plain is not None:
            seconds = float(plain)
        elif hh is not None:
            seconds = float(int(hh) * 3600 + int(mm) * 60 + int(ss))
        else:
            seconds = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; a duration is 0 or more")
    return seconds


#: Every duration in the site file: ``90m``, ``8h``, ``1d12h``, ``02:30:00``, or a number of seconds. The model
#: holds seconds (float); bounds (``gt``, ``le``) are in seconds.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": DURATION_RE.pattern}, {"type": "number", "minimum": 0}],
            "x-condorhub-kind": "duration",
            "description": "A duration: 90m, 8h, 1d12h, 02:30:00 (hours:minutes:seconds) or a number of seconds.",
        }
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
    connect_timeout: Duration = Field(
        written("5s"),
        gt=0,
        le=120,
        description="How long to wait for the LDAP server to accept a connection (at most 2m).",
    )
    receive_timeout: Duration = Field(
        written("10s"),
        gt=0,
        le=300,
        description="How long to wait for any single LDAP answer: bind, search (at most 5m).",
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
            f"those roles. Allowed roles: {', '.join(Role)}."
        ),
    )
    default: Role | None = Field(
        None,
        description=("Role of people in none of the mapped groups. Unset (the default): such people cannot log in."),
    )


class ThrottleSettings(Strict):
    free_failures: int = Field(
        5, ge=1, le=100, description="Failed logins (wrong passwords) allowed per user name before slowing down."
    )
    free_failures_per_address: int = Field(
        50,
        ge=1,
        le=100_000,
        description=(
            "Failed logins allowed per client address before slowing down; higher than `free_failures` because "
            "a whole classroom often shares one address (NAT). Only wrong passwords that LDAP answered count, "
            "never logins in progress, correct ones or a failing LDAP service."
        ),
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description=(
            "Proxies in front of configurable-http-proxy (load balancer, nginx), as CIDR networks or addresses, "
            "whose X-Forwarded-For entries are believed. The client address counted is the first X-Forwarded-For "
            "entry from the right that is not one of these; configurable-http-proxy's own entry is always used, "
            "and X-Real-Ip or entries a client wrote itself never are. Empty: the address the proxy saw counts. "
            "A configurable-http-proxy on another host than the hub must be listed here itself."
        ),
    )
    window: Duration = Field(written("15m"), gt=0, description="Failures older than this are forgotten.")
    known_browser_lifetime: Duration = Field(
        written("30d"),
        ge=0,
        le=400 * 86400,
        description=(
            "After a successful login the browser keeps a signed cookie for that user this long: that "
            "user's later attempts from it are not slowed down by the (maybe shared, NAT) client address, only "
            "by the user name's own failures. Keeps a lecture hall whose typos used up its address's free "
            "failures from locking out its students. 0 turns it off."
        ),
    )
    max_delay: Duration = Field(
        written("1m"),
        gt=0,
        le=3600,
        description=(
            "After the free failures each further attempt must wait a delay that doubles from 2 s up to "
            "this. It slows password guessing without locking the real user out for long."
        ),
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value):
        # pydantic's own message ("not a valid IPv4 or IPv6 network") does not say what is wrong.
        for entry in value if isinstance(value, list) else []:
            try:
                ip_network(str(entry))
            except ValueError as err:
                raise ValueError(
                    f"{entry!r} is not an address or a network in CIDR notation ({err}); write e.g. "
                    "10.0.0.5 for one proxy or 10.0.0.0/24 for a network"
                ) from None
        return value


class LoginNodeProfile(Strict):
    """A server on the hub machine itself, run as the user's own Unix account."""

    kind: Literal["login_node"] = "login_node"
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="Short identifier used in forms and the API.")
    display_name: str = Field(description="What the spawn form shows.")
    description: str = Field("", description="One line under the name in the spawn form.")
    roles: list[Role] = Field(min_length=1, description="Roles that may start this profile.")
    cpus: float = Field(1, gt=0, le=256, description="CPU cores (a guideline on the login node, shown to the user).")
    memory: MemorySize = Field(written("2G"), description="Memory limit (a guideline on the login node).")
    idle_timeout: Duration | None = Field(
        None,
        gt=0,
        description=(
            "Stop this profile's servers after this long without activity (no browser tab talking to it, "
            "no kernel busy or producing output, no terminal in use); a kernel running a cell counts as "
            "active however long it runs. Unset: `culling.idle_timeout`. Give GPU profiles a short one so "
            "a forgotten server gives its GPU back to the next student in the queue."
        ),
    )


class CondorProfile(Strict):
    """A server run as an HTCondor job on an execute (GPU) node of the pool in the `htcondor` section."""

    kind: Literal["condor"] = "condor"
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="Short identifier used in forms and the API.")
    display_name: str = Field(description="What the spawn form shows.")
    description: str = Field("", description="One line under the name in the spawn form.")
    roles: list[Role] = Field(min_length=1, description="Roles that may start this profile.")
    cpus: int = Field(1, ge=1, le=256, description="CPU cores the job requests (HTCondor `request_cpus`).")
    memory: MemorySize = Field(written("4G"), description="Memory the job requests (HTCondor `request_memory`).")
    runtime: Duration = Field(
        written("8h"),
        description=(
            "Longest the server may run once started (HTCondor `allowed_job_duration`); then HTCondor "
            "stops it and the spawn page says why. Time waiting in the queue does not count."
        ),
    )
    gpus: int = Field(0, ge=0, le=16, description="GPUs the job requests (HTCondor `request_gpus`); 0 for a CPU job.")
    gpus_minimum_capability: float | None = Field(
        None,
        gt=0,
        le=20,
        description="Lowest CUDA compute capability a GPU must have, e.g. 7.0 (HTCondor `gpus_minimum_capability`).",
    )
    gpus_minimum_memory: MemorySize | None = Field(
        None, description="Least memory each GPU must have, e.g. 16G (HTCondor `gpus_minimum_memory`)."
    )
    idle_timeout: Duration | None = Field(
        None,
        gt=0,
        description=(
            "Stop this profile's servers after this long without activity (no browser tab talking to it, "
            "no kernel busy or producing output, no terminal in use); a kernel running a cell counts as "
            "active however long it runs. Unset: `culling.idle_timeout`. Give GPU profiles a short one so "
            "a forgotten server gives its GPU back to the next student in the queue."
        ),
    )

    @field_validator("runtime")
    @classmethod
    def _runtime_is_a_limit(cls, seconds: float) -> float:
        if seconds < 60:
            raise ValueError("a runtime limit under a minute leaves no time to start; write e.g. 8h or 90m")
        if seconds > 31 * 86400:
            raise ValueError("a runtime limit longer than 31 days is not a limit; write e.g. 8h or 7d")
        return seconds

    @model_validator(mode="after")
    def _gpu_constraints_need_gpus(self):
        if self.gpus == 0 and (self.gpus_minimum_capability is not None or self.gpus_minimum_memory is not None):
            raise ValueError(
                "`gpus_minimum_capability` and `gpus_minimum_memory` constrain the GPUs a job gets; set `gpus` "
                "to 1 or more, or remove them"
            )
        return self


#: Profile kinds and their models, keyed by the `kind` value (also used to word errors in site.py).
PROFILE_KINDS: dict[str, type[Strict]] = {"login_node": LoginNodeProfile, "condor": CondorProfile}

Profile = Annotated[LoginNodeProfile | CondorProfile, Field(discriminator="kind")]


class CullingSettings(Strict):
    """Idle culling: jupyterhub-idle-culler, run by the hub as a service, stops servers nobody uses."""

    enabled: bool = Field(
        True,
        description=(
            "Run the idle culler. Off: servers run until their user stops them or, for `condor` profiles, "
            "until their `runtime` limit, holding their GPUs all that time."
        ),
    )
    idle_timeout: Duration = Field(
        written("2h"),
        gt=0,
        description="Idle timeout of the profiles that set no `idle_timeout` of their own.",
    )
    check_interval: Duration = Field(
        written("1m"),
        gt=0,
        description=(
            "How often the culler looks at every server (one request for the list of users). A server is "
            "stopped between its idle timeout and that plus this interval plus the servers' activity report "
            "interval (a third of the shortest idle timeout, at most 5 min)."
        ),
    )
    concurrency: int = Field(
        10, ge=1, le=100, description="Most requests the culler sends the hub at once (it stops servers in parallel)."
    )


class CourseSettings(Strict):
    slug: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="Short identifier, used in URLs and folder names."
    )
    title: str = Field(description="What students and instructors see on the hub's home page.")
    students_group: str = Field(description="LDAP group (cn) whose members take the course.")
    instructors_group: str = Field(
        description="LDAP group (cn) whose members teach it: they publish its material and may open the "
        "servers of its students, and only of its students."
    )
    repository: str | None = Field(
        None,
        description=(
            "Git repository (URL or path on shared storage) the material comes from, when instructors keep "
            "it in git. Unset: the hub keeps a repository under `hub.courses_dir` that instructors publish "
            "a folder of their home into."
        ),
    )
    branch: str = Field("main", pattern=r"^[A-Za-z0-9._/-]{1,100}$", description="Branch to distribute.")
    target: str = Field(
        "",
        description="Folder in the student's home the course lands in; default `courses/<slug>`.",
    )

    @field_validator("target")
    @classmethod
    def _relative_inside_home(cls, value: str) -> str:
        if value and (PurePosixPath(value).is_absolute() or ".." in PurePosixPath(value).parts):
            raise ValueError("must be a relative path inside the home directory, without `..`")
        return value

    @property
    def target_dir(self) -> str:
        return self.target or f"courses/{self.slug}"


class CoursePublishSettings(Strict):
    """How the hub turns an instructor's folder into a course version (see condorhub.courses.publish)."""

    account: str = Field(
        "condorhub-courses",
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description=(
            "Unprivileged system account that owns the course repositories under `hub.courses_dir` and runs "
            "git for a publish; root never unpacks or commits instructor content. It must exist on the hub "
            "(the jupyterhub Ansible role creates it): the hub refuses to start with hub-managed courses "
            "without it."
        ),
    )
    max_size: MemorySize = Field(
        written("1G"),
        description=(
            "Largest total size of the files one publish may contain (K, M, G, T). Course material is "
            "notebooks and small inputs; data sets belong in the shared data folder."
        ),
    )
    max_files: int = Field(20000, ge=1, le=1_000_000, description="Most files one publish may contain.")
    timeout: Duration = Field(
        written("5m"),
        gt=0,
        description="How long one publish may take; after it both its processes are killed and nothing is published.",
    )


class HubSettings(Strict):
    bind_url: AnyHttpUrl = Field(  # type: ignore[assignment]  # a string default, parsed (validate_default)
        "http://127.0.0.1:8000",
        description="Where people reach condorhub (the proxy's public address), including any URL prefix.",
    )
    hub_bind_url: AnyHttpUrl = Field(  # type: ignore[assignment]  # a string default, parsed (validate_default)
        "http://127.0.0.1:8081",
        description=(
            "Where the hub itself listens. Jupyter servers running as HTCondor jobs call back here, so on a "
            "cluster this must be an address the execute nodes can reach."
        ),
    )
    proxy_api_url: AnyHttpUrl = Field(  # type: ignore[assignment]  # a string default, parsed (validate_default)
        "http://127.0.0.1:8001",
        description=(
            "Where configurable-http-proxy's REST API listens (the hub starts the proxy and adds routes "
            "there). Change it when several hubs share a machine."
        ),
    )
    state_dir: Path = Field(
        Path("/var/lib/condorhub"),
        description=(
            "Directory for the hub's database, cookie secret and auth-state encryption key; created with mode 0700."
        ),
    )
    state_min_free: MemorySize = Field(
        written("64M"),
        description=(
            "Free space the hub keeps on the disk of `state_dir`: below it new logins (503) and new servers are "
            "refused with a message saying the hub's state disk is full, while running servers carry on. A full "
            "disk otherwise turns every database write of the hub into an error page."
        ),
    )
    courses_dir: Path = Field(
        Path("/srv/condorhub/courses"),
        description=(
            "Where the hub keeps the git repositories of courses that instructors publish from a folder. "
            "Readable by every user (students pull from it); on a cluster, shared with the execute nodes."
        ),
    )
    admin_users: list[str] = Field(
        default_factory=list,
        description="User names that are always hub admins, in addition to members of groups mapped to `admin`.",
    )
    server_venv: Path = Field(
        Path("/opt/condorhub/venv"),
        description=(
            "Python environment (virtualenv prefix) that provides `jupyterhub-singleuser` and JupyterLab for "
            "servers on the login node. Must be readable by every user."
        ),
    )
    default_url: str = Field("/lab", description="Page a new server opens on.")
    server_start_timeout: Duration = Field(
        written("2m"),
        ge=10,
        le=3600,
        description=(
            "How long a server on the login node may take from Start until it answers (at most 1h). Servers "
            "run as HTCondor jobs have their own limits: `htcondor.queue_timeout` and "
            "`htcondor.server_start_timeout`."
        ),
    )


class UserTokenSettings(Strict):
    """Each user's own HTCondor credential inside their server (see condorhub.spawner.condor.credentials)."""

    signing_key_file: Path | None = Field(
        Path("/etc/condor/passwords.d/POOL"),
        description=(
            "The pool's signing key (root only) that the hub signs each server's IDTOKEN for `<user>@<uid "
            "domain>` with (authorizations READ and WRITE: submit and manage one's own jobs). The hub host "
            "holds it as a submit host of the htcondor role. The issuer and the user domain come from the "
            "hub's own token (`token_file`). Unset (null): servers get no HTCondor credential."
        ),
    )
    login_node_lifetime: Duration = Field(
        written("7d"),
        ge=600,
        le=90 * 86400,
        description=(
            "How long a login-node server's token is valid (such servers have no runtime limit); a batch "
            "server's token is valid for its queue timeout plus its runtime. Tokens are removed when the "
            "server stops."
        ),
    )


#: Most jobs one submission of a user may add when `htcondor.max_jobs_per_user` does not list their role.
DEFAULT_MAX_JOBS_PER_USER = 1000


class UserMapSettings(Strict):
    """The pool's user map: the hub writes each user's groups and limits at login, the schedd enforces them."""

    file: Path = Field(
        description=(
            "The ClassAd user map the submit host's schedd reads (the htcondor role's `htcondor_user_map_file`, "
            "created there empty, root-owned, readable by condor only). At each login the hub puts the user's "
            "roles, accounting groups and limits in (the largest `gpus` and `runtime` among the condor profiles "
            "their roles may start, `max_jobs_per_user`); the schedd charges and refuses jobs by it, the users' "
            "own and the hub's alike, and refuses users who never logged in."
        ),
    )
    reconfig_command: list[str] = Field(
        default_factory=lambda: ["condor_reconfig", "-schedd"],
        min_length=1,
        description=(
            "Command the hub (root, on the submit host) runs after a user's lines changed, so that the schedd "
            "re-reads the map. The default authenticates as local root (FS) with the host's own HTCondor "
            "configuration, which may already administer the pool: the hub's token needs no further right."
        ),
    )


class HTCondorSettings(Strict):
    """How the hub reaches the HTCondor pool that runs the `condor` profiles."""

    condor_config: Path | None = Field(
        None,
        description=(
            "HTCondor configuration file for the hub's client (what CONDOR_CONFIG would name): pool address, "
            "security settings, token directory. Unset: $CONDOR_CONFIG, else HTCondor's usual search "
            "(/etc/condor/condor_config)."
        ),
    )
    collector: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.-]+(:\d{1,5})?$",
        description="Central manager (collector) as host or host:port. Unset: COLLECTOR_HOST from `condor_config`.",
    )
    schedd: str | None = Field(
        None,
        description=(
            "Name of the schedd (access point) that queues the servers, as `condor_status -schedd` lists it. "
            "Unset: the only schedd the collector knows, or the local one."
        ),
    )
    token_file: Path | None = Field(
        None,
        description=(
            "IDTOKEN the hub authenticates with (mode 0600, root only). Its identity must be a queue super "
            "user that may impersonate the pool's users (QUEUE_SUPER_USERS, QUEUE_SUPER_USER_MAY_IMPERSONATE), "
            "so the hub never needs sudo. Unset: the tokens `condor_config` points to."
        ),
    )
    hub_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:@/-]{1,200}$",
        description=(
            "Marks this hub's jobs in the queue (job attribute CondorhubHub), so that at start the hub removes "
            "jobs of its own that no server owns and leaves other hubs' jobs alone. Unset: this machine's "
            "name and `hub.state_dir`. Keep it stable across restarts."
        ),
    )
    server_venv: Path = Field(
        Path("/opt/condorhub/worker-venv"),
        description=(
            "Python environment on the execute nodes that provides condorhub, jupyterhub-singleuser and "
            "JupyterLab; the job starts the server from it."
        ),
    )
    queue_timeout: Duration = Field(
        written("1h"),
        gt=0,
        description=(
            "How long a server may wait in the queue for a free slot (e.g. a GPU) before the hub gives up "
            "and removes the job. Counted from submission."
        ),
    )
    server_start_timeout: Duration = Field(
        written("5m"),
        gt=0,
        description=(
            "How long a server may take from its job starting to run until it answers. Counted from the "
            "start of the job, not from submission, so a long queue never kills a server that is starting."
        ),
    )
    poll_interval: Duration = Field(
        written("5s"),
        ge=1,
        le=300,
        description=(
            "Time between queue queries (1s to 5m). The hub asks the schedd once per interval for all its servers "
            "together, whatever their number."
        ),
    )
    query_timeout: Duration = Field(
        written("20s"),
        ge=1,
        le=300,
        description="How long a single schedd or collector query may take before it counts as failed (1s to 5m).",
    )
    unknown_grace: Duration = Field(
        written("10m"),
        gt=0,
        description=(
            "How long the queue may be unreachable (failed or timed-out queries) before servers whose jobs "
            "cannot be seen are stopped. Until then they are kept: a busy schedd is no reason to drop a "
            "class's servers."
        ),
    )
    user_tokens: UserTokenSettings = Field(
        default_factory=UserTokenSettings,
        description="Each user's own HTCondor credential in their server, so they can submit from the Lab.",
    )
    accounting_groups: dict[Role, str] = Field(
        default_factory=dict,
        description=(
            "condorhub role → HTCondor accounting group (e.g. `student: group_students`), so the negotiator "
            "shares GPUs fairly between groups (the pool's GROUP_NAMES and quotas). Once set, every role that "
            "may start a `condor` profile needs an entry. A person with several roles is charged to the first "
            "role in the profile's `roles` that they have."
        ),
    )

    user_map: UserMapSettings | None = Field(
        None,
        description=(
            "Keep the pool's user map (accounting groups and limits per user, from their LDAP roles) for the schedd "
            "to enforce. Unset: the hub writes none; a pool configured by condorhub's htcondor role then refuses "
            "every user it has no lines for."
        ),
    )
    max_jobs_per_user: dict[Role, Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=dict,
        description=(
            f"Role → most jobs one submission of a user may add (roles not listed: {DEFAULT_MAX_JOBS_PER_USER}; "
            "a person with several roles gets the largest). HTCondor 23 counts a user's jobs in the queue only "
            "against one schedd-wide number, MAX_JOBS_PER_OWNER: the htcondor role sets it to the largest of "
            "these, so all of a user's submissions together stay below that."
        ),
    )

    @field_validator("accounting_groups")
    @classmethod
    def _group_names(cls, groups: dict) -> dict:
        for role, group in groups.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$", group):
                raise ValueError(
                    f"accounting group {group!r} for role {role} is not a valid HTCondor group name "
                    "(letters, digits, _ . -; e.g. group_students)"
                )
        return groups

    @model_validator(mode="after")
    def _user_map_needs_groups(self):
        # The schedd charges every job to a group from the map; without groups it would refuse them all.
        if self.user_map is not None and not self.accounting_groups:
            raise ValueError(
                "`user_map` makes the schedd charge each job to its owner's group: set `accounting_groups` "
                "(role → group) too, or remove `user_map`"
            )
        return self


class MetricsSettings(Strict):
    """Who may read the hub's Prometheus metrics (/hub/metrics, JupyterHub's and condorhub's own)."""

    token_file: Path | None = Field(
        None,
        description=(
            "File with the API token of a hub service that may read /hub/metrics and nothing else (scope "
            "`read:metrics`): the token Prometheus sends (`authorization: credentials_file`). Root-owned, not "
            "readable by other users (0640 root:prometheus; the prometheus Ansible role writes it), at least 32 "
            "characters. Unset: no such service; only admins' tokens may read the metrics."
        ),
    )
    service: str = Field(
        "prometheus",
        pattern=r"^[a-z0-9][a-z0-9-]{0,39}$",
        description="Name of that hub service (shown in the hub's logs and token list).",
    )


class SiteConfig(Strict):
    """The whole site file."""

    hub: HubSettings = Field(default_factory=HubSettings)
    ldap: LdapSettings
    roles: RoleSettings = Field(default_factory=RoleSettings)
    login_throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)
    htcondor: HTCondorSettings | None = Field(
        None,
        description="The HTCondor pool that runs `condor` profiles. Unset: only login-node profiles are possible.",
    )
    profiles: list[Profile] = Field(
        min_length=1,
        description="Resource profiles people can choose from, in the order the spawn form shows them.",
    )
    culling: CullingSettings = Field(
        default_factory=CullingSettings,
        description="Stopping idle servers (per profile: `idle_timeout`), so their GPUs go to the next in the queue.",
    )
    courses: list[CourseSettings] = Field(
        default_factory=list,
        description="Courses whose material instructors distribute to a group of students.",
    )
    course_publishing: CoursePublishSettings = Field(
        default_factory=CoursePublishSettings,
        description="Limits and the service account of publishing a folder as a course version.",
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings,
        description="Prometheus' access to the hub's metrics (see the prometheus Ansible role).",
    )

    @field_validator("courses")
    @classmethod
    def _unique_course_slugs(cls, courses: list) -> list:
        slugs = [c.slug for c in courses]
        twice = sorted({s for s in slugs if slugs.count(s) > 1})
        if twice:
            raise ValueError(f"course slug(s) {', '.join(twice)} used twice; slugs must be unique")
        return courses

    @field_validator("profiles")
    @classmethod
    def _unique_slugs(cls, profiles: list) -> list:
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
            raise ValueError(f"role(s) {', '.join(stranded)} may start no profile; add them to some profile's `roles`")
        return self

    @model_validator(mode="after")
    def _condor_profiles_need_a_pool(self):
        condor = [p for p in self.profiles if p.kind == "condor"]
        if condor and self.htcondor is None:
            names = ", ".join(p.slug for p in condor)
            raise ValueError(
                f"profile(s) {names} run on HTCondor, but the site file has no `htcondor` section; add one "
                "(see `condorhub config example`) or remove those profiles"
            )
        groups = self.htcondor.accounting_groups if self.htcondor else {}
        if groups:
            # Once groups are used, every condor job must have one: a job outside every group would
            # compete with all of them and defeat the fair share.
            for profile in condor:
                missing = [role for role in profile.roles if role not in groups]
                if missing:
                    raise ValueError(
                        f"profile {profile.slug!r}: role(s) {', '.join(missing)} have no "
                        "`htcondor.accounting_groups` entry; add one so their jobs are charged to a group"
                    )
        return self
