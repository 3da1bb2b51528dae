"""condorhub's LDAP authenticator: upstream ldapauthenticator, made safe to run a course on.

What :class:`CondorhubLDAPAuthenticator` adds to ``ldapauthenticator.LDAPAuthenticator``:

* **The LDAP work runs off the hub's event loop.** Upstream calls ldap3 synchronously inside
  ``async authenticate``, so one hung LDAP server stalls every request of the hub. Here the
  blocking part runs in a small dedicated thread pool, with socket timeouts on every LDAP
  operation and an overall asyncio deadline as a backstop.
* **TLS is verified.** ldap3's ``Tls()`` defaults to ``CERT_NONE``; here certificates are
  required to validate (system store or ``tls_ca_file``) unless ``tls_strategy="insecure"``.
* **Groups and roles.** The user's groups come from ``memberOf`` (or a group search); their
  cn become JupyterHub groups, and ``group_roles`` maps them to condorhub roles. Only users
  with a role get in; role "admin" makes a JupyterHub admin (and losing it revokes admin).
* **POSIX identity in auth_state** (uidNumber, gidNumber, home, shell): the spawner runs
  servers as that user, so accounts without them are refused.
* **Failed-login throttling** per username and per client address (see
  :mod:`condorhub.auth.throttle`): a throttled attempt is refused before LDAP is contacted, and
  only a wrong password (or unknown user) that LDAP has answered counts. The client address is
  the one the trusted proxy saw, never a client-written header
  (:mod:`condorhub.auth.client_address`). Parallel attempts for one username are admitted only
  as many as it has free failures left (one at a time once they are used up), and every attempt
  re-checks its address when it gets an LDAP thread: parallel guesses get no more tries per
  account than sequential ones, and at most ``ldap_threads - 1`` more per address, while a class
  logging in at once is never refused. A browser the user logged in from before is exempt from
  the address's throttle (:mod:`condorhub.auth.known_browsers`), so a lecture hall's own typos
  behind one NAT address cannot hold back its students either.
* **A service failure is not a wrong password.** A refused service-account bind (lookup mode),
  an unreachable or hung server: the login page says so (503) and nothing is counted.
* **Strict usernames**, rejecting LDAP filter/DN syntax before any LDAP call.
* **Errors people can act on.** Problems that are not "wrong password" are raised as
  ``tornado.web.HTTPError(status, message)``. JupyterHub renders such an error, raised during
  a login form POST, as the login page itself with the message in its
  ``<p class="login_error">`` (``LoginHandler.render_template`` turns ``error.html`` into
  ``login.html`` with ``login_error = message``). Wrong password and unknown user both return
  None, which JupyterHub shows as the generic "Invalid username or password".

Passwords are never logged, and usernames are logged with ``repr()`` (truncated), so that odd
input cannot forge log lines.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import re
import ssl
import string
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import ldap3
from ldap3.core.exceptions import (
    LDAPBindError,
    LDAPCertificateError,
    LDAPCommunicationError,
    LDAPSocketOpenError,
    LDAPStartTLSError,
)
from ldap3.core.tls import Tls
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn
from ldapauthenticator import LDAPAuthenticator
from ldapauthenticator.ldapauthenticator import TlsStrategy
from tornado import web
from traitlets import Dict, Float, Int, List, Unicode, default, observe, validate

from condorhub import state_disk
from condorhub.auth import known_browsers
from condorhub.auth.client_address import parse_networks, request_client_address, throttle_key
from condorhub.auth.throttle import FailedLoginThrottle
from condorhub.schema import GroupSettings, HubSettings, LdapSettings, Role, ThrottleSettings, default_of

__all__ = ["ROLES", "CondorhubLDAPAuthenticator"]

#: The roles condorhub knows; the spawner and the hub's permissions are keyed on them. The site file's
#: schema (:class:`condorhub.schema.Role`) owns the list.
ROLES = tuple(role.value for role in Role)

NO_ROLE_MESSAGE = (
    "Your account is in none of the groups that may use this hub; ask the hub's administrators for access."
)

# Characters with a meaning in LDAP filters (RFC 4515) or DNs (RFC 4514). Refused whatever
# valid_username_regex says, so that loosening the regex cannot open an injection.
_LDAP_SPECIAL = frozenset('*()\\\x00,=+<>;"#')

_POSIX_ATTRIBUTES = ("uidNumber", "gidNumber", "homeDirectory")

SERVICE_ACCOUNT_MESSAGE = (
    "The login service cannot reach the directory (its service account was refused); "
    "try again later, and tell the hub administrators if this persists."
)


def _log_name(name: str) -> str:
    """A username fit for a log line: repr() (no forged lines), at most 64 characters."""
    return repr(name[:64]) + ("..." if len(name) > 64 else "")


def _unescape_dn_value(value: str) -> str:
    """Undo RFC 4514 escaping (``\\,`` and ``\\c3\\a9``) in one attribute value of a DN."""
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(c in string.hexdigits for c in pair):
                out += bytes.fromhex(pair)
                i += 3
            else:
                out += value[i + 1].encode()
                i += 2
        else:
            out += value[i].encode()
            i += 1
    return out.decode("utf-8", errors="replace")


def _describe(error: BaseException) -> str:
    """An exception's message without the tuple wrapping ldap3's merged exception types add."""
    text = error.args[0] if len(error.args) == 1 else str(error)
    while isinstance(text, tuple) and len(text) == 1:
        text = text[0]
    return str(text)


def group_name_from_dn(dn: str) -> str:
    """The JupyterHub group name of an LDAP group: the value of its DN's first RDN (its cn)."""
    return _unescape_dn_value(parse_dn(dn)[0][1])


class LoginServiceError(Exception):
    """The login could not be decided; ``user_message`` is shown on the login page."""

    def __init__(self, user_message: str, log_message: str, status: int = 503) -> None:
        super().__init__(log_message)
        self.user_message = user_message
        self.log_message = log_message
        self.status = status


@dataclass(frozen=True)
class _Refused:
    """LDAP said no to this login.

    ``wrong_password``: LDAP answered that the password is wrong or the user does not exist
    (invalidCredentials, or no entry found). Only such an answer counts as a failed login;
    other refusals (the password was right but e.g. ``search_filter`` excludes the account)
    prove nothing about guessing.
    """

    wrong_password: bool
    reason: str


@dataclass
class _DirectoryUser:
    """What the blocking LDAP part found out about a user whose password was right."""

    dn: str
    uid: str  # the username the DN was built from (looked up with lookup_dn)
    attributes: dict[str, list] = field(default_factory=dict)  # lower-cased attribute names
    group_names: list[str] = field(default_factory=list)

    def first(self, attribute: str):
        values = self.attributes.get(attribute.lower()) or []
        return values[0] if values else None


class CondorhubLDAPAuthenticator(LDAPAuthenticator):
    """LDAP login with groups → roles, POSIX identity, throttling and an event loop that never blocks."""

    # ------------------------------------------------------------------ timeouts

    # Defaults that the site file also has come from its schema (default_of), so the two cannot differ.
    connect_timeout = Float(
        default_of(LdapSettings, "connect_timeout"),
        config=True,
        help="""
        Seconds to wait for the TCP connection to the LDAP server.

        A server that is down usually refuses at once; this limit matters when packets
        are silently dropped (a firewall, a dead host).
        """,
    )

    receive_timeout = Float(
        default_of(LdapSettings, "receive_timeout"),
        config=True,
        help="""
        Seconds to wait for each answer of the LDAP server (StartTLS, bind, searches).

        A hung server (accepting connections but never answering) is detected after this
        long. Rounded up to whole seconds, because ldap3 sets the socket's SO_RCVTIMEO from
        it and only accepts an integer there.
        """,
    )

    login_timeout = Float(
        config=True,
        help="""
        Overall seconds a login may take before the login page says the LDAP service did not
        answer, even if an LDAP thread is still stuck.

        Defaults to `connect_timeout + 2 * receive_timeout`. It also bounds the wait for a
        free LDAP thread when all `ldap_threads` are busy, and for room among the attempts for
        the same username (see `throttle_free_failures`).
        """,
    )

    @default("login_timeout")
    def _default_login_timeout(self):
        return float(self.connect_timeout + 2 * self.receive_timeout)

    ldap_threads = Int(
        8,
        config=True,
        help="""
        Size of the thread pool that runs the (blocking) LDAP work of logins.

        Bounded so that a hung LDAP server ties up at most this many threads; further
        logins wait (up to `login_timeout`) instead of piling up threads.
        """,
    )

    state_min_free = Int(
        default_of(HubSettings, "state_min_free"),
        config=True,
        help="""
        Bytes that must stay free on the disk of the hub's database (`hub.state_dir`) for new logins and
        servers: below, a login gets a 503 and a spawn fails, both saying the hub's state disk is full,
        while running servers carry on (their activity and their stop still fit). 0 turns the check off.
        Site file: `hub.state_min_free`.

        Without it a full disk turned every request that writes the database into a 500 (and a logged-in
        user into a logged-out one). A hub's database grows by kilobytes per login, so the default is room
        for hours of a class's writes while an administrator frees space.
        """,
    )

    @validate("connect_timeout", "receive_timeout", "login_timeout", "ldap_threads")
    def _validate_positive(self, proposal):
        if proposal.value <= 0:
            raise ValueError(f"{proposal.trait.name} must be positive, not {proposal.value}")
        return proposal.value

    # ------------------------------------------------------------------ TLS

    tls_ca_file = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""
        PEM file with the CA certificate(s) that signed the LDAP server's certificate.

        None (default) uses the system's trust store. Certificates are always verified
        (and the server name checked) unless `tls_strategy` is "insecure".
        """,
    )

    @validate("tls_ca_file")
    def _validate_tls_ca_file(self, proposal):
        path = proposal.value
        if path is not None and not os.path.isfile(path):
            raise ValueError(
                f"tls_ca_file {path!r} does not exist; point it at the PEM file of the CA "
                "that signed the LDAP server's certificate"
            )
        return path

    @observe("tls_strategy")
    def _warn_insecure(self, change):
        if change.new == TlsStrategy.insecure:
            self.log.warning(
                "LDAP tls_strategy is 'insecure': passwords go to %s in clear text. "
                "Use it only for local testing; configure 'before_bind' (StartTLS) or "
                "'on_connect' (ldaps) for anything real.",
                self.server_address or "the LDAP server",
            )

    @observe("tls_kwargs")
    def _warn_unverified_tls(self, change):
        if change.new.get("validate", ssl.CERT_REQUIRED) != ssl.CERT_REQUIRED:
            self.log.warning(
                "LDAP tls_kwargs turn certificate verification off (validate=%r): anyone between "
                "the hub and the LDAP server can read passwords. Prefer tls_ca_file.",
                change.new["validate"],
            )

    def tls_settings(self) -> Tls:
        """The ldap3 ``Tls`` for connections: verification required unless configured otherwise."""
        kwargs = {"validate": ssl.CERT_REQUIRED, **self.tls_kwargs}
        if self.tls_ca_file and "ca_certs_file" not in self.tls_kwargs:
            kwargs["ca_certs_file"] = self.tls_ca_file
        return Tls(**kwargs)

    # ------------------------------------------------------------------ usernames

    valid_username_regex = Unicode(
        default_of(LdapSettings, "valid_username_regex"),
        config=True,
        help="""
        Regex that a username (stripped and lower-cased) must match before LDAP is contacted.

        The default accepts POSIX-style login names (at most 32 characters). Characters with a
        meaning in LDAP filters or DNs (`* ( ) \\ , = + < > ; " #` and NUL) are refused even
        if this regex is loosened.
        """,
    )

    # ------------------------------------------------------------------ groups and roles

    group_membership_attribute = Unicode(
        default_of(GroupSettings, "membership_attribute"),
        config=True,
        help="""
        Attribute of the user's entry that lists the DNs of the user's groups.

        OpenLDAP fills `memberOf` with the memberof overlay, Active Directory always does.
        Not used when `group_search_base` is set.
        """,
    )

    group_search_base = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""
        Search base for the user's groups, for directories without a memberOf attribute.

        When set, groups are found by searching below it with `group_search_filter`
        (`{userdn}` and `{uid}` are replaced, escaped, by the user's DN and username).
        When None (default), the user's `group_membership_attribute` is read instead.
        """,
    )

    group_roles = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""
        Map of LDAP group cn → condorhub role.

        Roles are: {roles}. A user gets the roles of
        all their mapped groups; users in no mapped group get `default_role`, or are refused
        when it is None. Group names match case-insensitively, like cn does in LDAP.

        ```python
        c.CondorhubLDAPAuthenticator.group_roles = {
            "students": "student",
            "researchers": "researcher",
            "instructors": "instructor",
            "guests": "guest",
            "admins": "admin",
        }
        ```
        """.replace("{roles}", ", ".join(ROLES)),
    )

    @validate("group_roles")
    def _validate_group_roles(self, proposal):
        unknown = {group: role for group, role in proposal.value.items() if role not in ROLES}
        if unknown:
            raise ValueError(f"group_roles maps to unknown roles {unknown}; roles are {list(ROLES)}")
        return proposal.value

    default_role = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""
        Role of users who are in none of the groups in `group_roles`.

        None (default) refuses them, with the message "Your account is in none of the
        groups that may use this hub".
        """,
    )

    @validate("default_role")
    def _validate_default_role(self, proposal):
        if proposal.value is not None and proposal.value not in ROLES:
            raise ValueError(f"default_role {proposal.value!r} is not a role; roles are {list(ROLES)}")
        return proposal.value

    @observe("allowed_groups")
    def _refuse_allowed_groups(self, change):
        if change.new:
            raise ValueError(
                "CondorhubLDAPAuthenticator decides access by group_roles/default_role; "
                "allowed_groups is not supported. Map those groups' cn in group_roles instead."
            )

    @default("manage_groups")
    def _default_manage_groups(self):
        # LDAP is the source of truth for group membership: JupyterHub groups follow it.
        return True

    @default("any_allow_config")
    def _default_any_allow_config(self):
        # group_roles/default_role are this authenticator's allow config.
        return bool(self.group_roles or self.default_role) or super()._default_any_allowed()

    # ------------------------------------------------------------------ throttling

    throttle_free_failures = Int(
        default_of(ThrottleSettings, "free_failures"),
        config=True,
        help="""
        Failed logins for one username (within `throttle_window_seconds`) before attempts are slowed.

        Afterwards each attempt must wait `throttle_initial_delay_seconds` seconds after the last
        failure, doubling per further failure up to `throttle_max_delay_seconds`. This slows password
        guessing while the real user is never locked out for longer than the cap. A
        successful login resets the username's count.
        """,
    )

    throttle_free_failures_per_address = Int(
        default_of(ThrottleSettings, "free_failures_per_address"),
        config=True,
        help="""
        Failed logins from one client address before its attempts are slowed.

        Higher than `throttle_free_failures` because a whole classroom often shares one
        address (NAT); it stops one machine from guessing across many usernames. Only wrong
        passwords count (logins in progress and correct ones never do), so a class logging in
        at once is not slowed by this.
        """,
    )

    throttle_known_browser_days = Float(
        # Days, as tornado's signed cookies count their age; the site file writes a duration.
        default_of(ThrottleSettings, "known_browser_lifetime") / 86400,
        config=True,
        help="""
        Days a browser stays "known" for a user after a successful login; 0 turns this off.

        An attempt for a user from a browser that user logged in from before is not held back
        by the per-address throttle (only by the username's own). A lecture hall behind one NAT
        address whose students' typos used up the address's free failures can so still log in,
        while a guesser, who has no such (signed, per-user) cookie for the accounts it attacks,
        stays slowed down. See :mod:`condorhub.auth.known_browsers`.
        """,
    )

    trusted_proxies = List(
        Unicode(),
        config=True,
        help="""
        Proxies in front of configurable-http-proxy (load balancers, nginx) whose
        X-Forwarded-For entries are believed, as CIDR networks or single addresses.

        The client address the per-address throttle counts is the first address in
        X-Forwarded-For, read from the right, that is not one of these. The hop that connects
        to the hub (configurable-http-proxy on this machine) is always trusted; whatever a
        client writes into X-Real-Ip or X-Forwarded-For itself is never believed. Empty
        (default): the address configurable-http-proxy saw is the client. A request that
        reaches the hub's port from anywhere else is counted under its own socket address, so
        a configurable-http-proxy on another host (`ConfigurableHTTPProxy.should_start = False`)
        must be listed here, or every login is counted under the proxy's address.
        """,
    )

    @validate("trusted_proxies")
    def _validate_trusted_proxies(self, proposal):
        parse_networks(proposal.value)  # a ValueError naming the bad entry
        return proposal.value

    @property
    def trusted_proxy_networks(self):
        key = tuple(self.trusted_proxies)
        cached = getattr(self, "_trusted_proxy_cache", None)
        if cached is None or cached[0] != key:
            cached = self._trusted_proxy_cache = (key, parse_networks(key))
        return cached[1]

    throttle_initial_delay_seconds = Float(
        2.0, config=True, help="Seconds the first slowed-down attempt must wait after the last failure."
    )

    throttle_max_delay_seconds = Float(
        default_of(ThrottleSettings, "max_delay"),
        config=True,
        help="Cap, in seconds, of the doubling wait between slowed-down attempts.",
    )

    throttle_window_seconds = Float(
        default_of(ThrottleSettings, "window"),
        config=True,
        help="Seconds after the last failure at which a username's or address's count is forgotten.",
    )

    throttle_max_tracked = Int(
        10000,
        config=True,
        help="""
        Most usernames (and, separately, addresses) whose failures are remembered.

        Bounds memory under a flood of made-up usernames; the oldest entries are dropped first.
        """,
    )

    def _make_throttle(self, free_failures: int) -> FailedLoginThrottle:
        return FailedLoginThrottle(
            free_failures=free_failures,
            initial_delay=self.throttle_initial_delay_seconds,
            max_delay=self.throttle_max_delay_seconds,
            window=self.throttle_window_seconds,
            max_keys=self.throttle_max_tracked,
        )

    @property
    def username_throttle(self) -> FailedLoginThrottle:
        if getattr(self, "_username_throttle", None) is None:
            self._username_throttle = self._make_throttle(self.throttle_free_failures)
        return self._username_throttle

    @property
    def address_throttle(self) -> FailedLoginThrottle:
        if getattr(self, "_address_throttle", None) is None:
            self._address_throttle = self._make_throttle(self.throttle_free_failures_per_address)
        return self._address_throttle

    def client_address(self, handler) -> str:
        """The per-address throttle's key for this login: the client address the proxy saw."""
        request = getattr(handler, "request", None)
        return throttle_key(request_client_address(request, self.trusted_proxy_networks)) if request else "unknown"

    # ------------------------------------------------------------------ LDAP (blocking part)

    @property
    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if getattr(self, "_ldap_executor", None) is None:
            self._ldap_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.ldap_threads, thread_name_prefix="condorhub-ldap"
            )
        return self._ldap_executor

    def get_connection(self, userdn, password):
        """Bind as ``userdn``; the connection, or None when the bind was refused.

        Overrides upstream to add the timeouts and verified TLS. Raises ldap3 errors for
        connectivity and TLS problems. Runs in the LDAP thread pool, never on the event loop.
        """
        return self._bind(userdn, password)[0]

    def _bind(self, userdn, password):
        """:meth:`get_connection`, plus why a refused bind was refused: ``(conn, None)`` or
        ``(None, reason)``, where a reason containing "invalidCredentials" is a wrong password."""
        if self.tls_strategy == TlsStrategy.on_connect:
            use_ssl, auto_bind = True, ldap3.AUTO_BIND_NO_TLS
        elif self.tls_strategy == TlsStrategy.before_bind:
            use_ssl, auto_bind = False, ldap3.AUTO_BIND_TLS_BEFORE_BIND
        else:
            use_ssl, auto_bind = False, ldap3.AUTO_BIND_NO_TLS
        server = ldap3.Server(
            self.server_address,
            port=self.server_port,
            use_ssl=use_ssl,
            tls=self.tls_settings() if self.tls_strategy != TlsStrategy.insecure else None,
            connect_timeout=self.connect_timeout,
            # No schema/DSE reads: they cost round trips on every login and nothing here needs them.
            get_info=ldap3.NONE,
        )
        try:
            conn = ldap3.Connection(
                server,
                user=userdn,
                password=password,
                auto_bind=auto_bind,
                # ldap3 packs this into SO_RCVTIMEO as whole seconds: a float would crash it.
                receive_timeout=math.ceil(self.receive_timeout),
                read_only=True,
            )
            return conn, None
        except LDAPBindError as e:
            reason = str(e)
            if "invalidCredentials" in reason:
                self.log.debug("LDAP bind as %s refused: %s", userdn, reason)
            else:
                # Not a wrong password: e.g. confidentialityRequired or a locked account.
                self.log.warning("LDAP bind as %s refused: %s", userdn, reason)
            return None, reason or "bind refused"

    def _read_user(self, conn, userdn: str, uid: str) -> _DirectoryUser:
        attributes = ["uid", "uidNumber", "gidNumber", "homeDirectory", "loginShell"]
        if not self.group_search_base:
            attributes.append(self.group_membership_attribute)
        attributes += [a for a in self.auth_state_attributes if a not in attributes]
        conn.search(
            search_base=userdn,
            search_scope=ldap3.BASE,
            search_filter="(objectClass=*)",
            attributes=attributes,
        )
        if len(conn.entries) != 1:
            raise LoginServiceError(
                "The login service could not read your account; please tell the hub administrators.",
                f"bound as {userdn} but could not read that entry ({conn.result.get('description')}); "
                "the directory's ACLs must let users read their own entry",
                status=500,
            )
        entry = conn.entries[0]
        found = {name.lower(): list(values) for name, values in entry.entry_attributes_as_dict.items()}
        return _DirectoryUser(dn=entry.entry_dn, uid=uid, attributes=found)

    def _group_dns(self, conn, user: _DirectoryUser, uid: str) -> list[str]:
        if not self.group_search_base:
            return [str(dn) for dn in user.attributes.get(self.group_membership_attribute.lower(), [])]
        conn.search(
            search_base=self.group_search_base,
            search_scope=ldap3.SUBTREE,
            search_filter=self.group_search_filter.format(
                userdn=escape_filter_chars(user.dn), uid=escape_filter_chars(uid)
            ),
            attributes=["cn"],
        )
        return [entry.entry_dn for entry in conn.entries]

    def _passes_search_filter(self, conn, uid: str) -> bool:
        # Upstream's search_filter: the user must be found, uniquely, by this filter.
        conn.search(
            search_base=self.user_search_base,
            search_scope=ldap3.SUBTREE,
            search_filter=self.search_filter.format(userattr=self.user_attribute, username=escape_filter_chars(uid)),
            attributes=[],
        )
        return len(conn.entries) == 1

    def resolve_username(self, username_supplied_by_user):
        """Find the user's (uid, DN) with the service account (lookup_dn); (None, None) if no such user.

        Replaces upstream's, which returns (None, None) -- "wrong username or password", counted
        against the user -- also when the *service account's* bind is refused: after a rotated
        service password every user would be throttled. Here that, and an ambiguous or
        attribute-less match (a configuration problem), raise LoginServiceError. It also unbinds
        the service connection, which upstream leaves open.
        """
        service_dn = self.lookup_dn_search_user
        conn, reason = self._bind(service_dn, self.lookup_dn_search_password)
        if conn is None:
            raise LoginServiceError(
                SERVICE_ACCOUNT_MESSAGE,
                f"the LDAP service account {service_dn} was refused ({reason}); put its current password "
                "into ldap.lookup.search_password_file (CondorhubLDAPAuthenticator.lookup_dn_search_password) "
                "and restart the hub",
            )
        try:
            conn.search(
                search_base=self.user_search_base,
                search_scope=ldap3.SUBTREE,
                search_filter=self.lookup_dn_search_filter.format(
                    login_attr=self.user_attribute, login=escape_filter_chars(username_supplied_by_user)
                ),
                attributes=[self.lookup_dn_user_dn_attribute],
            )
            entries = list(conn.entries)
        finally:
            try:
                conn.unbind()
            except Exception:  # noqa: BLE001 - the search's outcome matters, not the goodbye
                pass
        if not entries:
            return None, None
        problem = None
        if len(entries) > 1:
            problem = f"{len(entries)} entries match; lookup filter and user_attribute must find one"
        else:
            values = entries[0].entry_attributes_as_dict.get(self.lookup_dn_user_dn_attribute) or []
            if len(values) != 1:
                problem = (
                    f"the entry has {len(values)} values of {self.lookup_dn_user_dn_attribute!r}; "
                    "check ldap.user_attribute"
                )
        if problem:
            raise LoginServiceError(
                "The login service could not look up your account; please tell the hub administrators.",
                f"looking up {_log_name(username_supplied_by_user)} below {self.user_search_base}: {problem}",
                status=500,
            )
        return str(values[0]), entries[0].entry_dn

    def ldap_login(self, username: str, password: str) -> _DirectoryUser | _Refused:
        """The blocking LDAP part of a login: bind, read the entry and the groups.

        Returns :class:`_Refused` when LDAP said no (``wrong_password`` for a wrong password or an
        unknown user); raises LoginServiceError when LDAP could not answer the question.
        """
        try:
            uid = username
            templates = list(self.bind_dn_template)
            if self.lookup_dn:
                uid, found_dn = self.resolve_username(username)
                if not found_dn:
                    return _Refused(True, "no such user")
                templates = templates or [found_dn]
            conn, reasons = None, []
            for template in templates:
                # escape_rdn although the username was validated: defence in depth.
                conn, reason = self._bind(template.format(username=escape_rdn(uid)), password)
                if conn:
                    break
                reasons.append(reason)
            if not conn:
                wrong = any("invalidCredentials" in reason for reason in reasons)
                return _Refused(wrong, "; ".join(reasons))
            try:
                if self.search_filter and not self._passes_search_filter(conn, uid):
                    self.log.warning("LDAP login of %s refused: search_filter does not match it", _log_name(username))
                    return _Refused(False, "search_filter does not match the account")
                user = self._read_user(conn, conn.user, uid)
                user.group_names = sorted({group_name_from_dn(dn) for dn in self._group_dns(conn, user, uid)})
                return user
            finally:
                try:
                    conn.unbind()
                except Exception:  # noqa: BLE001 - a broken connection must not hide the real outcome
                    pass
        except LoginServiceError:
            raise
        except Exception as e:
            raise self._service_error(e) from e

    def _service_error(self, error: Exception) -> LoginServiceError:
        where = f"{self.server_address}:{self.server_port}"
        if isinstance(error, (ssl.SSLCertVerificationError, LDAPCertificateError)):
            return LoginServiceError(
                "The login service (LDAP) presented a certificate this hub does not trust; "
                "please tell the hub administrators.",
                f"TLS certificate of the LDAP server {where} was not accepted ({_describe(error)}). Set "
                "CondorhubLDAPAuthenticator.tls_ca_file to the PEM file of the CA that signed it "
                "and make sure server_address is a name in the certificate.",
            )
        if isinstance(error, LDAPStartTLSError) or (
            isinstance(error, LDAPSocketOpenError) and isinstance(error, ssl.SSLError)
        ):
            return LoginServiceError(
                "The login service (LDAP) could not set up a secure connection; please tell the hub administrators.",
                f"TLS with the LDAP server {where} failed ({_describe(error)}); check that the server offers "
                f"TLS for tls_strategy={self.tls_strategy.name!r}",
            )
        if isinstance(error, TimeoutError):
            if isinstance(error, LDAPSocketOpenError):
                limit = self.connect_timeout
            else:
                limit = math.ceil(self.receive_timeout)
            return LoginServiceError(
                f"The login service (LDAP) did not answer in {limit:g} s; try again later.",
                f"LDAP server {where} did not answer within {limit:g} s ({_describe(error)})",
            )
        if isinstance(error, (LDAPCommunicationError, OSError)):
            return LoginServiceError(
                "The login service (LDAP) cannot be reached right now; try again later.",
                f"LDAP server {where} cannot be reached ({_describe(error)})",
            )
        return LoginServiceError(
            "The login service (LDAP) failed; please tell the hub administrators.",
            f"LDAP login against {where} failed unexpectedly: {type(error).__name__}: {_describe(error)}",
            status=500,
        )

    # ------------------------------------------------------------------ the login (async part)

    def normalize_login_name(self, name: str) -> str:
        return name.strip().lower()

    def is_valid_login_name(self, name: str) -> bool:
        if not name or _LDAP_SPECIAL.intersection(name) or not name.isprintable():
            return False
        return re.fullmatch(self.valid_username_regex, name) is not None

    def _throttled(self, throttle: FailedLoginThrottle, key: str, message: str, username: str) -> None:
        wait = throttle.retry_after_seconds(key)
        if wait > 0:
            self.log.warning(
                "Login of %s throttled (%d failures from %s %s): must wait %d s",
                _log_name(username),
                throttle.failures(key),
                "address" if throttle is self.address_throttle else "username",
                key if throttle is self.address_throttle else _log_name(key),
                wait,
            )
            error = web.HTTPError(429, message.format(seconds=wait))
            # JupyterHub's write_error copies an HTTPError's .headers into the response.
            error.headers = {"Retry-After": str(wait)}  # type: ignore[attr-defined]
            raise error

    def roles_for(self, group_names: list[str]) -> list[str]:
        mapping = {group.lower(): role for group, role in self.group_roles.items()}
        roles = {mapping[name.lower()] for name in group_names if name.lower() in mapping}
        if not roles and self.default_role:
            roles = {self.default_role}
        return sorted(roles)

    def _state_dir(self):
        # The hub's database folder, from the JupyterHub application that made this authenticator.
        return state_disk.state_dir_of(str(getattr(self.parent, "db_url", "") or ""))

    def check_state_disk(self) -> None:
        """Raise :class:`condorhub.state_disk.StateDiskFull` while the hub's state disk is (nearly) full."""
        state_disk.check(self._state_dir(), self.state_min_free)

    def pre_spawn_start(self, user, spawner):
        # Before the spawner starts anything (no job, no process, no secrets file): a server the hub could
        # not record would be lost to it.
        try:
            self.check_state_disk()
        except state_disk.StateDiskFull as e:
            self.log.error("Spawn of %s refused: %s", spawner._log_name, e)
            raise
        return super().pre_spawn_start(user, spawner)

    async def authenticate(self, handler, data):
        username = self.normalize_login_name(data.get("username") or "")
        password = data.get("password") or ""
        try:
            # A login writes the database (the user, the cookie): refused before LDAP while it cannot.
            self.check_state_disk()
        except state_disk.StateDiskFull as e:
            self.log.error("Login of %s refused: %s", _log_name(username), e)
            raise web.HTTPError(503, str(e)) from None
        address = self.client_address(handler)
        # A browser this user logged in from before is not held back by its (maybe shared) address.
        by_address = not known_browsers.is_known(handler, username, self.throttle_known_browser_days)

        if by_address:
            self._check_address(address, username)
        # Neither check below reaches LDAP, so neither can guess a password: not counted.
        if not self.is_valid_login_name(username):
            self.log.warning(
                "Login refused for %s from %s: not a valid username (must match %s)",
                _log_name(username),
                address,
                self.valid_username_regex,
            )
            return None
        if not password.strip():
            # An LDAP bind with an empty password is an anonymous bind that *succeeds*.
            self.log.warning("Login refused for %s from %s: empty password", _log_name(username), address)
            return None
        self._check_username(username)

        started = time.monotonic()
        try:
            outcome = await asyncio.wait_for(
                self._attempt(username, password, address, by_address), timeout=self.login_timeout
            )
        except (TimeoutError, LoginServiceError) as e:
            # Not the user's fault: nothing was counted (counting happens only on LDAP's answer).
            if isinstance(e, asyncio.TimeoutError):
                e = LoginServiceError(
                    f"The login service (LDAP) did not answer in {self.login_timeout:g} s; try again later.",
                    f"LDAP login did not finish within login_timeout={self.login_timeout:g} s",
                )
            self.log.error("Login of %s from %s not decided: %s", _log_name(username), address, e.log_message)
            raise web.HTTPError(e.status, e.user_message) from None

        if isinstance(outcome, _Refused):
            if outcome.wrong_password:
                self.log.warning(
                    "LDAP login failed for %s from %s: wrong password or unknown user "
                    "(failures counted: %d for the username, %d for the address)",
                    _log_name(username),
                    address,
                    self.username_throttle.failures(username),
                    self.address_throttle.failures(address),
                )
            else:
                self.log.warning(
                    "LDAP login refused for %s from %s, not counted as a failure: %s",
                    _log_name(username),
                    address,
                    outcome.reason,
                )
            return None
        model = self._auth_model(username, outcome, time.monotonic() - started)
        known_browsers.remember(handler, username, self.throttle_known_browser_days)
        return model

    def _check_address(self, address: str, username: str) -> None:
        self._throttled(
            self.address_throttle,
            address,
            "Too many failed logins from your network address; try again in {seconds} s.",
            username,
        )

    def _check_username(self, username: str) -> None:
        self._throttled(
            self.username_throttle,
            username,
            "Too many failed logins for this account; try again in {seconds} s.",
            username,
        )

    async def _attempt(
        self, username: str, password: str, address: str, by_address: bool = True
    ) -> _DirectoryUser | _Refused:
        """One login's LDAP part, admitted against the failures *answered* so far; counts its outcome.

        Never a refusal for attempts merely in flight (a class logging in at once), yet parallel
        guesses gain nothing per username and little per address: the throttle is checked again at
        each point where this attempt may have waited (for room among the username's attempts, for
        an LDAP thread), and the outcome is counted before that room is given to the next attempt.
        """
        async with self._room_for(username):
            return await self._in_ldap_thread(username, password, address, by_address)

    def _count(self, username: str, address: str, outcome: _DirectoryUser | _Refused) -> None:
        if isinstance(outcome, _Refused):
            if outcome.wrong_password:
                self.username_throttle.record_failure(username)
                self.address_throttle.record_failure(address)
        else:
            # A success forgets the username's failures; the address's stay (logging into
            # one's own account must not wipe the record of guesses at others).
            self.username_throttle.reset(username)

    @contextlib.asynccontextmanager
    async def _room_for(self, username: str):
        """Admit an attempt for ``username`` only while, should all its attempts in flight turn out
        wrong, the username would still be within its free failures (and at least one at a time).

        So parallel guesses for one account get exactly the tries sequential ones would, while
        correct logins of one account (a shared course account, a student with three tabs) still
        run side by side. Waiting attempts re-check the throttle each time one finishes.
        Entries exist only while attempts for the username are in flight or waiting.
        """
        throttle = self.username_throttle
        rooms = self.__dict__.setdefault("_username_rooms", {})
        room = rooms.get(username)
        if room is None:
            room = rooms[username] = SimpleNamespace(users=0, in_flight=0, finished=asyncio.Event())
        room.users += 1  # waiting or in flight
        try:
            while True:
                self._check_username(username)
                if room.in_flight < max(1, throttle.free_failures - throttle.failures(username)):
                    break
                await room.finished.wait()
            room.in_flight += 1
            try:
                yield
            finally:
                room.in_flight -= 1
                room.finished.set()  # wake the waiting attempts; they re-check
                room.finished = asyncio.Event()
        finally:
            room.users -= 1
            if room.users == 0:
                del rooms[username]

    def _ldap_slots(self) -> asyncio.Semaphore:
        """One slot per LDAP thread, so that attempts are admitted to LDAP only when a thread is free."""
        loop = asyncio.get_running_loop()
        slots = getattr(self, "_ldap_slot_state", None)
        if slots is None or slots[0] is not loop:
            slots = self._ldap_slot_state = (loop, asyncio.Semaphore(self.ldap_threads))
        return slots[1]

    async def _in_ldap_thread(self, username: str, password: str, address: str, by_address: bool = True):
        """Run :meth:`ldap_login` on a free LDAP thread and count its outcome.

        The slot is given back only once the outcome is counted (so whoever gets it next sees
        the count), or, when this login gave up waiting (login_timeout), once its thread has
        really finished: a hung LDAP server cannot make more threads' work pile up.
        """
        slots = self._ldap_slots()
        await slots.acquire()
        loop = asyncio.get_running_loop()
        released = abandoned = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                slots.release()

        def thread_finished(_future) -> None:
            if abandoned:
                release()

        try:
            # Re-check now that this attempt has an LDAP thread: while it waited, attempts ahead of
            # it may have been answered "wrong password".
            if by_address:
                self._check_address(address, username)
            future = self._executor.submit(self.ldap_login, username, password)
        except BaseException:
            release()
            raise

        def on_thread_finished(f) -> None:
            try:
                loop.call_soon_threadsafe(thread_finished, f)
            except RuntimeError:  # the loop is closed: the hub is shutting down
                pass

        future.add_done_callback(on_thread_finished)
        try:
            outcome = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            abandoned = True
            if future.done():
                release()
            raise
        except BaseException:
            release()
            raise
        try:
            self._count(username, address, outcome)
        finally:
            release()
        return outcome

    def _auth_model(self, username: str, user: _DirectoryUser, elapsed: float) -> dict:
        missing = [name for name in _POSIX_ATTRIBUTES if user.first(name) in (None, "")]
        if missing:
            self.log.warning(
                "Login refused for %s: LDAP entry %s lacks the posixAccount attributes %s, which the "
                "spawner needs to run the server as that user; add them in the directory",
                _log_name(username),
                user.dn,
                ", ".join(missing),
            )
            raise web.HTTPError(
                403,
                "Your account has no POSIX identity (uidNumber, gidNumber, homeDirectory), which this "
                "hub needs to start your server; please tell the hub administrators.",
            )
        roles = self.roles_for(user.group_names)
        if not roles:
            self.log.warning(
                "Login refused for %s: groups %s map to no role in group_roles", _log_name(username), user.group_names
            )
            raise web.HTTPError(403, NO_ROLE_MESSAGE)

        auth_state = {
            "dn": user.dn,
            "ldap_groups": user.group_names,
            "roles": roles,
            "uid_number": int(user.first("uidNumber")),
            "gid_number": int(user.first("gidNumber")),
            "home_directory": str(user.first("homeDirectory")),
        }
        if user.first("loginShell"):
            auth_state["login_shell"] = str(user.first("loginShell"))
        if self.auth_state_attributes:
            auth_state["user_attributes"] = {
                name: user.attributes.get(name.lower(), []) for name in self.auth_state_attributes
            }
        self.log.info(
            "LDAP login of %s (%s) in %.2f s: groups %s, roles %s",
            _log_name(username),
            user.dn,
            elapsed,
            user.group_names,
            roles,
        )
        return {
            # Upstream's use_lookup_dn_username: the looked-up attribute value names the hub user.
            "name": user.uid.lower() if self.use_lookup_dn_username else username,
            # Explicit False (not None) so that leaving the admin group revokes admin rights.
            "admin": "admin" in roles or username in self.admin_users,
            "groups": user.group_names,
            "auth_state": auth_state,
        }

    async def check_allowed(self, username, authentication=None):
        # Access was decided in authenticate() from group_roles/default_role: whoever reaches
        # this with roles is allowed. Others fall back to JupyterHub's allow_all/allowed_users
        # (upstream's allowed_groups logic is replaced by group_roles).
        auth_state = (authentication or {}).get("auth_state") or {}
        if auth_state.get("roles"):
            return True
        return super(LDAPAuthenticator, self).check_allowed(username, authentication)
