"""Each user's own HTCondor identity inside their server: an IDTOKEN for ``<user>@<uid_domain>`` only.

With it, ``condor_submit``, ``condor_q``, ``condor_rm`` and the ``htcondor2`` bindings work in every Lab
terminal and kernel *as that user*: the schedd lets a user act on their own jobs only, and the pool (not
condorhub's forms) enforces accounting groups and limits on whatever they submit.

The hub mints the token itself, the way ``condor_token_create`` does: a JWT signed (HS256) with a key
derived (HKDF-SHA256, salt ``htcondor``, info ``master jwt``) from the pool's signing key, which the hub
host holds as a submit host (``/etc/condor/passwords.d/POOL``, root only). No subprocess, no condor
binaries needed on the hub, and nothing of the token goes into a job ad: it reaches a batch server through
its secrets file (:mod:`.secretfile`), and a login-node server through a 0700 folder written as the user.

The token is limited in three ways: its identity is the user's (so a stolen one acts as that user only),
its authorizations are READ and WRITE (no ADVERTISE_*, DAEMON or ADMINISTRATOR, whatever the pool's
ALLOW lists say), and it expires with the server (a batch server's runtime plus its queue time, or
`login_node_lifetime`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from traitlets import Float, Unicode
from traitlets.config import SingletonConfigurable

from condorhub.schema import UserTokenSettings, default_of

#: What a submitter needs: read the queue and the pool, submit and change one's own jobs.
USER_AUTHORIZATIONS = ("READ", "WRITE")

_SCRAMBLE = bytes([0xDE, 0xAD, 0xBE, 0xEF])


class CredentialError(RuntimeError):
    """No credential can be minted; the message says what to configure."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(raw: bytes) -> bytes:
    """The HMAC key of a pool signing-key file, as HTCondor derives it.

    HTCondor stores the key XOR-"scrambled" with 0xdeadbeef, uses it up to its first NUL byte, and feeds
    it to HKDF twice over (checked against ``condor_token_create`` of HTCondor 23.9: tests/test_condor_e2e.py
    uses tokens minted here against a real schedd and collector).
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    password = bytes(b ^ _SCRAMBLE[i % 4] for i, b in enumerate(raw)).split(b"\0", 1)[0]
    if not password:
        raise CredentialError("the pool signing key file is empty")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"htcondor", info=b"master jwt").derive(password * 2)


def mint_token(
    key: bytes,
    *,
    identity: str,
    issuer: str,
    lifetime: float,
    key_id: str = "POOL",
    authorizations: tuple[str, ...] = USER_AUTHORIZATIONS,
    now: float | None = None,
) -> str:
    """An IDTOKEN for ``identity``, valid ``lifetime`` seconds, limited to ``authorizations``."""
    issued = int(time.time() if now is None else now)
    header = {"alg": "HS256", "kid": key_id, "typ": "JWT"}
    claims = {
        "sub": identity,
        "iss": issuer,
        "iat": issued,
        "exp": issued + max(int(lifetime), 60),
        "jti": uuid.uuid4().hex,
        "scope": " ".join(f"condor:/{authz}" for authz in authorizations),
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def token_claims(token: str) -> dict:
    """The claims of a token (not verified: used for the hub's own root-only token, to learn the pool's
    issuer and user domain from it)."""
    try:
        return json.loads(_unb64(token.strip().split(".")[1]))
    except (IndexError, ValueError) as err:
        raise CredentialError(f"not an IDTOKEN ({err})") from None


def client_config(hub_config: str, token_dir: str | None, schedd: str | None) -> str:
    """The user's CONDOR_CONFIG: the pool as the hub's client sees it, the user's token folder, IDTOKENS only.

    ``hub_config`` is the hub's own client configuration (pool address, security settings; no secrets:
    keys and tokens live in files it names, which are overridden here).
    """
    lines = [
        "# condorhub: your own HTCondor client configuration (CONDOR_CONFIG). Your token in the folder below",
        "# acts as you only and expires with this server; condorhub removes both when the server stops.",
        hub_config.rstrip(),
        "",
        "# --- yours",
        "SEC_PASSWORD_DIRECTORY = /nonexistent",
        "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
        "SEC_CLIENT_AUTHENTICATION = REQUIRED",
        "LOG = /tmp",
        "TOOL_LOG =",
    ]
    if schedd and "." in schedd:
        # Tools find the access point by name through the collector (there is no schedd on a GPU node). They
        # accept only a fully qualified name ("unknown host" otherwise); a schedd named without a domain can
        # only be the local one, which tools find without it.
        lines.append(f"SCHEDD_HOST = {schedd}")
    if token_dir:  # else the launcher of a batch server appends it: the folder is in the job's scratch
        lines += token_dir_lines(token_dir)
    return "\n".join(lines) + "\n"


def token_dir_lines(token_dir: str) -> list[str]:
    return [f"SEC_TOKEN_DIRECTORY = {token_dir}", f"SEC_TOKEN_SYSTEM_DIRECTORY = {token_dir}"]


class UserCredentials(SingletonConfigurable):
    """Mints users' HTCondor tokens and their client configuration (one per hub)."""

    signing_key_file = Unicode(
        str(default_of(UserTokenSettings, "signing_key_file")),
        config=True,
        help="""
        The pool's signing key (HTCondor password file, root only) that users' tokens are signed with;
        the hub host holds it as a submit host. Empty: servers get no HTCondor credential (users cannot
        submit from the Lab).
        """,
    )

    hub_token_file = Unicode(
        "",
        config=True,
        help="""
        The hub's own IDTOKEN (`htcondor.token_file`). Its issuer is the pool's TRUST_DOMAIN and its
        identity's domain the pool's UID_DOMAIN, which users' tokens must have too, so neither has to be
        configured twice.
        """,
    )

    hub_condor_config = Unicode(
        "",
        config=True,
        help="The hub's client configuration (`htcondor.condor_config`), the base of every user's CONDOR_CONFIG.",
    )

    login_node_lifetime = Float(
        default_of(UserTokenSettings, "login_node_lifetime"),
        config=True,
        help="""
        Seconds a login-node server's token is valid (such servers have no runtime limit). A batch
        server's token is valid for its queue time plus its runtime limit.
        """,
    )

    @property
    def enabled(self) -> bool:
        # The site file's `htcondor` section sets the hub's token; without a pool there is nothing to give.
        return bool(self.signing_key_file and self.hub_token_file)

    def _pool_names(self) -> tuple[str, str]:
        """(issuer, uid_domain) from the hub's token."""
        try:
            claims = token_claims(Path(self.hub_token_file).read_text())
        except OSError as err:
            raise CredentialError(f"cannot read the hub's token {self.hub_token_file}: {err.strerror}") from None
        issuer, subject = str(claims.get("iss") or ""), str(claims.get("sub") or "")
        if not issuer or "@" not in subject:
            raise CredentialError(f"the hub's token {self.hub_token_file} names no issuer or user domain")
        return issuer, subject.rpartition("@")[2]

    def mint(self, user: str, lifetime: float) -> str:
        """A token for ``user`` alone (blocking: reads two root-only files)."""
        if not self.enabled:
            raise CredentialError("htcondor.user_tokens.signing_key_file is not set")
        issuer, domain = self._pool_names()
        try:
            key = signing_key(Path(self.signing_key_file).read_bytes())
        except OSError as err:
            raise CredentialError(
                f"cannot read the pool signing key {self.signing_key_file}: {err.strerror}; the hub host must "
                "hold it (a submit host of the htcondor role does), or set htcondor.user_tokens.signing_key_file"
            ) from None
        return mint_token(key, identity=f"{user}@{domain}", issuer=issuer, lifetime=lifetime)

    def config_for(self, token_dir: str | None, schedd: str | None) -> str:
        base = Path(self.hub_condor_config).read_text() if self.hub_condor_config else ""
        return client_config(base, token_dir, schedd)
