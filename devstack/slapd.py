"""A self-contained OpenLDAP server (Debian's slapd) for the test suite and the demo.

:class:`OpenLDAPServer` builds a cn=config directory under ``base_dir`` and runs slapd as a
child process that this Python process owns (``-d`` keeps it in the foreground, so there is
no daemon to chase and a hung server can be simulated with SIGSTOP). Everything lives under
``base_dir``::

    slapd.d/         cn=config, created once with ``slapadd -n0``
    data/            the mdb database of the suffix
    ldapi            the unix socket (ldapi://), used with SASL EXTERNAL for administration
    slapd.log        slapd's own log (connections and operations at loglevel "stats")
    admin-password   the generated password of cn=admin,<suffix> (mode 0600)
    configured       marker: config and base entries are complete

Throw-away use (tests): a fresh base_dir, ``with OpenLDAPServer(dir) as server: ...``.
Persistent use (demo): the same base_dir again; :meth:`OpenLDAPServer.start` sees the marker
and only starts the existing server, so the demo can be re-run safely.

The configuration has the mdb backend, the core/cosine/nis/inetorgperson schemas and the
memberof, refint and ppolicy overlays. In OpenLDAP 2.5 the ppolicy schema is compiled into the
ppolicy module itself (2.4's ``ppolicy.schema`` file is gone), so loading the module is all it
takes. Data is added only through the running server (:meth:`OpenLDAPServer.add_ldif`):
``slapadd`` would write the database directly and bypass the memberof overlay.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

from devstack.directory import ssha_password

__all__ = ["OpenLDAPServer", "SlapdError"]

SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")

# Unix socket paths are limited to 108 bytes (sun_path) including the terminating NUL.
_MAX_SOCKET_PATH = 100


class SlapdError(RuntimeError):
    """slapd could not be configured, started or used; the message says why and what to do."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client_env() -> dict[str, str]:
    # LDAPNOINIT: the ldap-utils must not pick up /etc/ldap/ldap.conf or ~/.ldaprc (a BASE or
    # TLS_REQCERT there would change what our commands do).
    return {**os.environ, "LDAPNOINIT": "1"}


class OpenLDAPServer:
    """A slapd serving ``suffix`` from ``base_dir``, on ldap://127.0.0.1:<port>/ and ldapi://.

    :param base_dir: folder holding config, data, socket and log (created if missing).
    :param port: TCP port on 127.0.0.1; None picks a free one (kept across restarts of this object).
    :param suffix: naming context of the mdb database.
    :param tls_cert_file: PEM server certificate; with ``tls_key_file`` it enables StartTLS on
        the ldap:// port. Only read when the configuration is first created.
    :param tls_key_file: PEM private key of ``tls_cert_file``.
    :param startup_timeout: seconds to wait for slapd to answer on ldapi:// after starting.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        port: int | None = None,
        suffix: str = "dc=condorhub,dc=test",
        *,
        tls_cert_file: str | os.PathLike[str] | None = None,
        tls_key_file: str | os.PathLike[str] | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.suffix = suffix
        self.admin_dn = f"cn=admin,{suffix}"
        self.config_dir = self.base_dir / "slapd.d"
        self.data_dir = self.base_dir / "data"
        self.socket_path = self.base_dir / "ldapi"
        self.log_path = self.base_dir / "slapd.log"
        self.startup_timeout = startup_timeout
        if (tls_cert_file is None) != (tls_key_file is None):
            raise ValueError("give both tls_cert_file and tls_key_file, or neither")
        self.tls_cert_file = Path(tls_cert_file).absolute() if tls_cert_file else None
        self.tls_key_file = Path(tls_key_file).absolute() if tls_key_file else None
        self._auto_port = port is None
        self.port = port if port is not None else _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        if len(str(self.socket_path).encode()) > _MAX_SOCKET_PATH:
            raise SlapdError(
                f"the ldapi socket path {self.socket_path} is longer than {_MAX_SOCKET_PATH} bytes, "
                "which unix sockets do not allow; use a shorter base_dir (e.g. under /var/tmp)"
            )
        for tool in ("slapd", "slapadd", "ldapadd", "ldapwhoami", "ldapsearch"):
            if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
                raise SlapdError(
                    f"{tool} is not installed; install Debian's slapd and ldap-utils packages "
                    "(apt-get install slapd ldap-utils)"
                )

    # ------------------------------------------------------------------ addresses

    @property
    def uri(self) -> str:
        """The TCP URI clients such as the hub use, e.g. ``ldap://127.0.0.1:38911``."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldapi_uri(self) -> str:
        """The unix-socket URI (path URL-escaped, as ldapi:// requires) for SASL EXTERNAL."""
        return "ldapi://" + urllib.parse.quote(str(self.socket_path), safe="")

    @property
    def admin_password(self) -> str:
        """Password of :attr:`admin_dn`, generated when the configuration was created."""
        try:
            return (self.base_dir / "admin-password").read_text().strip()
        except FileNotFoundError:
            raise SlapdError(
                f"{self.base_dir} has no admin-password yet; call start() first"
            ) from None

    @property
    def is_configured(self) -> bool:
        """True when base_dir already holds a complete server (config and base entries)."""
        return (self.base_dir / "configured").exists()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running else None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> OpenLDAPServer:
        """Create the configuration if needed, start slapd and wait until it answers."""
        if self.running:
            return self
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_other_slapd_running()
        fresh = not self.is_configured
        if fresh:
            self._create_config()
        self._launch()
        if fresh:
            self._add_base_entries()
            (self.base_dir / "configured").write_text("slapd.d and base entries are complete\n")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate slapd (resuming it first if paused) and wait for it to exit."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            if self._paused:
                process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._paused = False
        self._process = None

    def pause(self) -> None:
        """SIGSTOP slapd: it keeps its sockets, so clients connect but never get an answer (a hung server)."""
        self._require_running("pause")
        self._process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused slapd; it then answers what queued up meanwhile."""
        self._require_running("resume")
        self._process.send_signal(signal.SIGCONT)
        self._paused = False

    def __enter__(self) -> OpenLDAPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ data

    def add_ldif(self, text: str, *, ignore_existing: bool = False) -> None:
        """Add the entries in ``text`` through the running server (``ldapadd -Y EXTERNAL``).

        Going through slapd (not slapadd) lets the overlays do their work, e.g. memberof
        writing each member's ``memberOf``. With ``ignore_existing`` entries that already
        exist are skipped (a re-run demo), while any other error still raises.
        """
        self._require_running("add entries")
        command = ["ldapadd", "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_uri]
        if ignore_existing:
            command.append("-c")  # continue past "Already exists" and report each error
        result = subprocess.run(
            command, input=text.encode(), capture_output=True, env=_client_env(), timeout=60
        )
        if result.returncode == 0:
            return
        errors = result.stderr.decode(errors="replace")
        error_lines = [line for line in errors.splitlines() if line.startswith("ldap_add:")]
        if ignore_existing and error_lines and all("(68)" in line for line in error_lines):
            return
        raise SlapdError(f"ldapadd into {self.ldapi_uri} failed (exit {result.returncode}):\n{errors}")

    def search(self, base: str, ldap_filter: str = "(objectClass=*)", *attributes: str,
               scope: str = "sub") -> str:
        """LDIF of the entries found, searched as the local root over ldapi (for checks and debugging)."""
        self._require_running("search")
        result = subprocess.run(
            ["ldapsearch", "-Q", "-LLL", "-o", "ldif-wrap=no", "-Y", "EXTERNAL",
             "-H", self.ldapi_uri, "-s", scope, "-b", base, ldap_filter, *attributes],
            capture_output=True, env=_client_env(), timeout=60,
        )
        if result.returncode not in (0, 32):  # 32: no such object
            raise SlapdError(f"ldapsearch failed (exit {result.returncode}): {result.stderr.decode()}")
        return result.stdout.decode()

    # ------------------------------------------------------------------ log

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def accepted_tcp_connections(self) -> int:
        """How many TCP connections slapd has accepted so far (from its "stats" log).

        ldapi connections log ``PATH=`` instead of ``IP=`` and are not counted, so the
        administrative commands of this class never show up here.
        """
        return sum(1 for line in self.log_text().splitlines() if " ACCEPT from IP=" in line)

    # ------------------------------------------------------------------ internals

    def _require_running(self, action: str) -> None:
        if not self.running:
            raise SlapdError(f"cannot {action}: slapd for {self.base_dir} is not running; call start()")

    def _refuse_if_other_slapd_running(self) -> None:
        # Two slapd processes on the same mdb would fight over it; the pid file tells whether a
        # previous run (e.g. a demo in another terminal) still has it.
        pid_file = self.base_dir / "slapd.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return
        if comm == "slapd":
            raise SlapdError(
                f"a slapd (pid {pid}) is already serving {self.base_dir}; stop it "
                f"(kill {pid}) or use that server instead of starting a second one"
            )

    def _create_config(self) -> None:
        # A half-created configuration (a run interrupted before the marker was written) is
        # thrown away: slapadd refuses to write into an existing cn=config.
        for leftover in (self.config_dir, self.data_dir):
            if leftover.exists():
                shutil.rmtree(leftover)
        self.config_dir.mkdir(mode=0o700)
        self.data_dir.mkdir(mode=0o700)
        password_file = self.base_dir / "admin-password"
        password_file.touch(mode=0o600)
        password_file.chmod(0o600)
        password = secrets.token_urlsafe(18)
        password_file.write_text(password + "\n")
        config_ldif = self.base_dir / "config.ldif"
        config_ldif.write_text(self._config_ldif(ssha_password(password)))
        result = subprocess.run(
            ["slapadd", "-n0", "-F", str(self.config_dir), "-l", str(config_ldif)],
            capture_output=True, timeout=60,
        )
        # The LDIF holds the root password hash; it is not needed once cn=config exists.
        config_ldif.unlink()
        if result.returncode != 0:
            raise SlapdError(
                f"slapadd -n0 could not create cn=config in {self.config_dir} "
                f"(exit {result.returncode}):\n{result.stderr.decode(errors='replace')}"
            )

    def _config_ldif(self, root_password_hash: str) -> str:
        # The local root (uid 0, or whoever runs this) administers both the config and the data
        # over ldapi with SASL EXTERNAL, so no password is needed for set-up.
        external_root = (
            f"gidNumber={os.getgid()}+uidNumber={os.getuid()},cn=peercred,cn=external,cn=auth"
        )
        schema_includes = "\n".join(
            f"include: file://{SCHEMA_DIR / (name + '.ldif')}" for name in SCHEMAS
        )
        tls = ""
        if self.tls_cert_file:
            tls = (
                f"olcTLSCertificateFile: {self.tls_cert_file}\n"
                f"olcTLSCertificateKeyFile: {self.tls_key_file}\n"
            )
        return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.base_dir / 'slapd.pid'}
olcArgsFile: {self.base_dir / 'slapd.args'}
olcLogLevel: stats
{tls}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: back_mdb
olcModuleLoad: memberof
olcModuleLoad: refint
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schema_includes}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: 500
olcAccess: {{0}}to * by dn.exact={external_root} manage by * break
olcAccess: {{1}}to dn.base="" by * read
olcAccess: {{2}}to dn.base="cn=subschema" by * read

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcRootDN: {external_root}
olcAccess: {{0}}to * by dn.exact={external_root} manage by * break

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {self.data_dir}
olcSuffix: {self.suffix}
olcRootDN: {self.admin_dn}
olcRootPW: {root_password_hash}
olcDbMaxSize: 268435456
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: cn eq
olcDbIndex: member eq
olcDbIndex: memberUid eq
olcDbIndex: uidNumber eq
olcDbIndex: gidNumber eq
olcAccess: {{0}}to * by dn.exact={external_root} manage by * break
olcAccess: {{1}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{2}}to attrs=shadowLastChange,pwdHistory,pwdFailureTime by self read by * none
olcAccess: {{3}}to * by self read by users read by * none

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
olcMemberOfDangling: ignore

dn: olcOverlay={{1}}refint,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {{1}}refint
olcRefintAttribute: member
olcRefintAttribute: memberOf

dn: olcOverlay={{2}}ppolicy,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {{2}}ppolicy
olcPPolicyDefault: cn=default,ou=policies,{self.suffix}
olcPPolicyHashCleartext: TRUE
olcPPolicyUseLockout: FALSE
"""

    def _base_entries_ldif(self) -> str:
        first_rdn = self.suffix.split(",")[0]
        attribute, _, value = first_rdn.partition("=")
        if attribute.lower() != "dc":
            raise SlapdError(f"suffix {self.suffix!r} must start with dc=..., e.g. dc=condorhub,dc=test")
        # The default password policy keeps lockout off: the hub throttles failed logins
        # itself, and a directory lockout would let anyone lock a student out of the course.
        return f"""\
dn: {self.suffix}
objectClass: dcObject
objectClass: organization
dc: {value}
o: condorhub

dn: ou=policies,{self.suffix}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{self.suffix}
objectClass: organizationalRole
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: FALSE
pwdMustChange: FALSE
pwdAllowUserChange: TRUE
pwdMinLength: 8
pwdCheckQuality: 1
"""

    def _add_base_entries(self) -> None:
        self.add_ldif(self._base_entries_ldif())

    def _launch(self) -> None:
        attempts = 3 if self._auto_port else 1
        for attempt in range(attempts):
            if attempt:
                self.port = _free_port()  # someone took the port we picked; pick another
            if self._launch_once():
                return
        if self._auto_port:
            problem = f"every free port it picked was taken before slapd could bind it (last {self.port})"
        else:
            problem = f"port {self.port} on 127.0.0.1 is in use; stop what listens there or choose another port"
        raise SlapdError(f"slapd did not start: {problem}. Its log {self.log_path} ends with:\n{self.log_tail()}")

    def _launch_once(self) -> bool:
        """Start slapd and wait until it answers; False if it exited because the port was taken."""
        if self.socket_path.exists():
            # A socket left by a killed slapd; slapd would refuse to bind over it.
            self.socket_path.unlink()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            # -d stats: stay in the foreground (we own the process; no daemon to chase) and
            # log connections/operations to stderr, i.e. the log file.
            self._process = subprocess.Popen(
                ["slapd", "-F", str(self.config_dir),
                 "-h", f"{self.uri}/ {self.ldapi_uri}", "-d", "stats"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal must not kill it before we stop it
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                new_log = self.log_text()[log_offset:]
                if "Address already in use" in new_log:
                    return False
                raise SlapdError(
                    f"slapd exited while starting; its log {self.log_path} ends with:\n"
                    f"{self.log_tail()}"
                )
            probe = subprocess.run(
                ["ldapwhoami", "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_uri],
                capture_output=True, env=_client_env(), timeout=5,
            )
            if probe.returncode == 0:
                return True
            time.sleep(0.05)
        self.stop()
        raise SlapdError(
            f"slapd did not answer on {self.ldapi_uri} within {self.startup_timeout:g} s; "
            f"its log {self.log_path} ends with:\n{self.log_tail()}"
        )
