"""CondorhubLDAPAuthenticator against real OpenLDAP servers started by the suite.

The login path is JupyterHub's own ``Authenticator.get_authenticated_user`` (what the login
form's POST calls), so each result is what the hub would do with the login.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import shutil
import time
from types import SimpleNamespace

import pytest
from tornado import web
from tornado.httputil import HTTPHeaders

from tests.support.ldap import DEMO_GROUP_ROLES, make_authenticator, start_seeded_slapd
from tests.support.scratch import scratch_dir

pytestmark = pytest.mark.ldap

SUFFIX = "dc=condorhub,dc=test"


def login_handler(address: str = "192.0.2.10"):
    """What authenticate() reads from JupyterHub's LoginHandler: the request's socket peer (tornado's
    ``connection.context.address``) and headers; here a client that reached the hub directly.
    (The e2e tests in test_e2e_login_throttle.py go through configurable-http-proxy.)"""
    return SimpleNamespace(request=SimpleNamespace(
        headers=HTTPHeaders(),
        connection=SimpleNamespace(context=SimpleNamespace(address=(address, 40000))),
        remote_ip=address,
    ))


async def login(auth, username, password, address="192.0.2.10"):
    return await auth.get_authenticated_user(
        login_handler(address), {"username": username, "password": password}
    )


async def login_error(auth, username, password, address="192.0.2.10") -> web.HTTPError:
    """The HTTPError whose message JupyterHub shows on the login page."""
    with pytest.raises(web.HTTPError) as info:
        await login(auth, username, password, address)
    return info.value


# ---------------------------------------------------------------------- who gets in, as what


async def test_alice_logs_in_as_a_student_with_her_posix_identity(slapd, ldap_home_base):
    user = await login(make_authenticator(slapd), "alice", "alice-pw")
    assert user["name"] == "alice"
    assert user["groups"] == ["students"]
    assert user["admin"] is False
    state = user["auth_state"]
    assert state["dn"] == f"uid=alice,ou=people,{SUFFIX}"
    assert state["ldap_groups"] == ["students"]
    assert state["roles"] == ["student"]
    assert state["uid_number"] == 10001
    assert state["gid_number"] == 10000
    assert state["home_directory"] == f"{ldap_home_base}/alice"
    assert state["login_shell"] == "/bin/bash"


async def test_bob_is_a_researcher(slapd):
    user = await login(make_authenticator(slapd), "bob", "bob-pw")
    assert user["name"] == "bob"
    assert user["groups"] == ["researchers"]
    assert user["auth_state"]["roles"] == ["researcher"]
    assert user["auth_state"]["uid_number"] == 10002


async def test_username_is_stripped_and_lower_cased(slapd):
    user = await login(make_authenticator(slapd), "  Alice ", "alice-pw")
    assert user["name"] == "alice"


async def test_admin_role_makes_a_hub_admin_and_its_absence_revokes_it(slapd):
    as_admin = make_authenticator(slapd, group_roles={**DEMO_GROUP_ROLES, "instructors": "admin"})
    carol = await login(as_admin, "carol", "carol-pw")
    assert carol["admin"] is True
    assert carol["auth_state"]["roles"] == ["admin"]
    # Explicit False, not None: JupyterHub then clears a previously granted admin flag.
    carol = await login(make_authenticator(slapd), "carol", "carol-pw")
    assert carol["admin"] is False
    assert carol["auth_state"]["roles"] == ["instructor"]


async def test_user_in_no_mapped_group_is_told_so(slapd):
    auth = make_authenticator(slapd, group_roles={"students": "student"})
    error = await login_error(auth, "dave", "dave-pw")
    assert error.status_code == 403
    assert "Your account is in none of the groups that may use this hub" in error.log_message


async def test_default_role_lets_unmapped_users_in(slapd):
    auth = make_authenticator(slapd, group_roles={"students": "student"}, default_role="guest")
    dave = await login(auth, "dave", "dave-pw")
    assert dave["auth_state"]["roles"] == ["guest"]
    assert dave["groups"] == ["guests"]


async def test_group_search_finds_groups_by_member_and_by_memberuid(slapd):
    # Directories without memberOf: search the groups instead. Below the suffix that finds the
    # groupOfNames (member=<dn>) and the posixGroup (memberUid=<uid>).
    auth = make_authenticator(slapd, group_search_base=SUFFIX)
    alice = await login(auth, "alice", "alice-pw")
    assert alice["groups"] == ["condorhub", "students"]
    assert alice["auth_state"]["roles"] == ["student"]


async def test_lookup_dn_finds_the_user_with_a_service_account(slapd):
    # Sites whose user DNs cannot be built from a template look the DN up first.
    auth = make_authenticator(slapd)
    auth.lookup_dn = True
    auth.bind_dn_template = []
    auth.lookup_dn_search_user = slapd.admin_dn
    auth.lookup_dn_search_password = slapd.admin_password
    auth.user_search_base = f"ou=people,{SUFFIX}"
    auth.user_attribute = "uid"
    auth.lookup_dn_user_dn_attribute = "uid"
    bob = await login(auth, "bob", "bob-pw")
    assert bob["auth_state"]["dn"] == f"uid=bob,ou=people,{SUFFIX}"
    assert bob["auth_state"]["roles"] == ["researcher"]
    assert await login(auth, "bob", "alice-pw") is None
    assert await login(auth, "nobody", "alice-pw") is None


# ---------------------------------------------------------------------- who does not get in


async def test_wrong_password_is_refused(slapd):
    assert await login(make_authenticator(slapd), "alice", "bob-pw") is None


async def test_unknown_user_is_refused_like_a_wrong_password(slapd):
    assert await login(make_authenticator(slapd), "zoe", "zoe-pw") is None


async def test_empty_password_is_refused(slapd):
    # An LDAP bind with an empty password is an anonymous bind, which would succeed.
    assert await login(make_authenticator(slapd), "alice", "") is None


async def test_passwords_never_appear_in_the_log(slapd, caplog):
    caplog.set_level(logging.DEBUG)
    auth = make_authenticator(slapd, throttle_free_failures=1)
    assert await login(auth, "alice", "Secret-Typo-1") is None
    with pytest.raises(web.HTTPError):
        await login(auth, "alice", "Secret-Typo-2")
    assert await login(auth, "bob", "bob-pw") is not None
    assert await login(auth, "alice)(x", "Secret-Typo-3") is None
    assert "LDAP login failed for 'alice'" in caplog.text  # the log does say what happened
    for secret in ("Secret-Typo", "bob-pw"):
        assert secret not in caplog.text


@pytest.mark.parametrize("username", ["*", "alice)(uid=*", "admin*", "a\\00", "a\x00", "uid=alice,ou=x"])
async def test_injection_usernames_are_refused_without_contacting_ldap(slapd, username):
    auth = make_authenticator(slapd)
    before = slapd.accepted_tcp_connections()
    assert await login(auth, username, "alice-pw") is None
    time.sleep(0.1)  # give slapd time to log an ACCEPT, were there one
    assert slapd.accepted_tcp_connections() == before
    # The counter does see real logins (so the check above is not vacuous).
    assert await login(auth, "alice", "alice-pw") is not None
    deadline = time.monotonic() + 2
    while slapd.accepted_tcp_connections() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert slapd.accepted_tcp_connections() > before


# ---------------------------------------------------------------------- throttling


async def test_repeated_failures_throttle_that_account_only(slapd):
    auth = make_authenticator(slapd, throttle_free_failures=3, throttle_initial_delay_seconds=1.0)
    for _ in range(3):
        assert await login(auth, "alice", "guess") is None
    # Even the right password is refused now, with a message saying how long to wait.
    error = await login_error(auth, "alice", "alice-pw")
    assert error.status_code == 429
    assert error.log_message == "Too many failed logins for this account; try again in 1 s."
    assert error.headers == {"Retry-After": "1"}
    # Another user (same network address) is unaffected.
    assert (await login(auth, "bob", "bob-pw"))["name"] == "bob"
    await asyncio.sleep(1.1)
    assert (await login(auth, "alice", "alice-pw"))["name"] == "alice"
    # The success reset the count: one more typo is free again.
    assert await login(auth, "alice", "guess") is None
    assert (await login(auth, "alice", "alice-pw"))["name"] == "alice"


async def test_throttled_attempts_do_not_reach_ldap(slapd):
    auth = make_authenticator(slapd, throttle_free_failures=1, throttle_initial_delay_seconds=30)
    assert await login(auth, "bob", "guess") is None
    time.sleep(0.1)
    before = slapd.accepted_tcp_connections()
    error = await login_error(auth, "bob", "bob-pw")
    assert "try again in 30 s" in error.log_message
    time.sleep(0.1)
    assert slapd.accepted_tcp_connections() == before


async def test_one_address_guessing_many_usernames_is_throttled(slapd):
    auth = make_authenticator(slapd, throttle_free_failures_per_address=4,
                              throttle_initial_delay_seconds=30)
    for name in ["zoe", "yan", "xia", "wim"]:
        assert await login(auth, name, "guess", address="198.51.100.7") is None
    error = await login_error(auth, "alice", "alice-pw", address="198.51.100.7")
    assert error.status_code == 429
    assert error.log_message.startswith("Too many failed logins from your network address")
    # The same account from elsewhere still works.
    assert (await login(auth, "alice", "alice-pw", address="203.0.113.5"))["name"] == "alice"


async def test_correct_logins_in_flight_never_count_as_failures(slapd):
    # One free failure per account and per address: had attempts been counted before LDAP answered, the
    # second concurrent login would already be refused.
    auth = make_authenticator(slapd, throttle_free_failures=1, throttle_free_failures_per_address=1)
    demo = [("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw"), ("dave", "dave-pw")] * 10
    users = await asyncio.gather(*(login(auth, name, password) for name, password in demo))
    assert [user["name"] for user in users] == [name for name, _ in demo]
    assert auth.address_throttle.failures("192.0.2.10") == 0


async def test_only_answered_wrong_passwords_count(slapd):
    auth = make_authenticator(slapd, throttle_free_failures=2)
    # Neither an invalid name nor an empty password reaches LDAP: neither can guess, neither counts.
    for _ in range(5):
        assert await login(auth, "alice)(x", "guess") is None
        assert await login(auth, "alice", "") is None
    assert auth.username_throttle.failures("alice") == 0
    assert auth.address_throttle.failures("192.0.2.10") == 0
    assert await login(auth, "alice", "guess") is None
    assert auth.username_throttle.failures("alice") == 1
    assert auth.address_throttle.failures("192.0.2.10") == 1


async def outcomes(auth, credentials, address="192.0.2.10"):
    """Log in with all ``credentials`` at once: "in", "invalid" or the HTTP status of each."""
    async def one(username, password):
        try:
            return "in" if await login(auth, username, password, address) else "invalid"
        except web.HTTPError as e:
            return e.status_code
    return await asyncio.gather(*(one(u, p) for u, p in credentials))


async def test_parallel_guesses_for_one_account_get_exactly_the_sequential_tries(slapd):
    auth = make_authenticator(slapd, throttle_free_failures=3)
    results = await outcomes(auth, [("bob", f"guess-{i}") for i in range(20)])
    assert results.count("invalid") == 3
    assert results.count(429) == 17
    assert auth.username_throttle.failures("bob") == 3


async def test_parallel_guesses_from_one_address_overtake_the_count_by_less_than_the_ldap_threads(slapd):
    auth = make_authenticator(slapd, throttle_free_failures_per_address=5, ldap_threads=8)
    results = await outcomes(auth, [(f"spray{i}", "guess") for i in range(40)])
    # An attempt is admitted when it gets one of the 8 LDAP threads, against the failures counted by
    # then: at most the 7 attempts holding the other threads can still be undecided.
    assert 5 <= results.count("invalid") <= 5 + 7, results
    assert results.count(429) == 40 - results.count("invalid")


def lookup_authenticator(slapd, service_password, **overrides):
    auth = make_authenticator(slapd, **overrides)
    auth.lookup_dn = True
    auth.bind_dn_template = []
    auth.lookup_dn_search_user = slapd.admin_dn
    auth.lookup_dn_search_password = service_password
    auth.user_search_base = f"ou=people,{SUFFIX}"
    auth.user_attribute = "uid"
    auth.lookup_dn_user_dn_attribute = "uid"
    return auth


async def test_a_refused_service_account_is_a_service_error_and_counts_against_nobody(slapd, caplog):
    auth = lookup_authenticator(slapd, "not-the-service-password",
                                throttle_free_failures=1, throttle_free_failures_per_address=1)
    for password in ["bob-pw", "typo", "bob-pw", "typo"]:
        error = await login_error(auth, "bob", password)
        assert error.status_code == 503
        assert error.log_message.startswith("The login service cannot reach the directory")
    assert f"the LDAP service account {slapd.admin_dn} was refused" in caplog.text
    assert "ldap.lookup.search_password_file" in caplog.text
    assert auth.username_throttle.failures("bob") == 0
    assert auth.address_throttle.failures("192.0.2.10") == 0
    # The service password is fixed: bob gets straight in, and wrong passwords count again.
    auth.lookup_dn_search_password = slapd.admin_password
    assert (await login(auth, "bob", "bob-pw"))["name"] == "bob"
    assert await login(auth, "nobody", "typo") is None
    assert auth.address_throttle.failures("192.0.2.10") == 1


# ---------------------------------------------------------------------- a broken directory


@pytest.fixture(scope="module")
def scratch_slapd(ldap_home_base):
    """A slapd of its own, for tests that pause, stop or change it."""
    base = scratch_dir("condorhub-scratch-")
    server = start_seeded_slapd(base, ldap_home_base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


async def test_account_without_posix_identity_is_refused_with_a_reason(scratch_slapd):
    from devstack.directory import ssha_password

    scratch_slapd.add_ldif(
        f"dn: uid=erin,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: erin\ncn: Erin\nsn: Erin\n"
        f"userPassword: {ssha_password('erin-pw')}\n\n"
        f"dn: cn=students,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\n"
        f"member: uid=erin,ou=people,{SUFFIX}\n"
    )
    error = await login_error(make_authenticator(scratch_slapd), "erin", "erin-pw")
    assert error.status_code == 403
    assert "no POSIX identity" in error.log_message


async def ticking(stop: asyncio.Event, gaps: list[float]) -> None:
    """Record how late the event loop runs a 20 ms sleep: a blocked loop shows as a big gap."""
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.02)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


async def test_hung_server_gets_a_clear_error_in_time_and_the_hub_keeps_running(scratch_slapd):
    auth = make_authenticator(scratch_slapd, connect_timeout=1, receive_timeout=1)
    stop, gaps = asyncio.Event(), []
    ticker = asyncio.create_task(ticking(stop, gaps))
    scratch_slapd.pause()
    try:
        started = time.monotonic()
        error = await login_error(auth, "alice", "alice-pw")
        elapsed = time.monotonic() - started
    finally:
        scratch_slapd.resume()
        stop.set()
        await ticker
    assert error.status_code == 503
    assert error.log_message == "The login service (LDAP) did not answer in 1 s; try again later."
    assert elapsed < 1 + 1 + 1
    # The loop kept running meanwhile: the LDAP wait happened off the event loop.
    assert len(gaps) > 20
    assert max(gaps) < 0.5


async def test_login_deadline_answers_even_while_an_ldap_thread_is_stuck(scratch_slapd):
    auth = make_authenticator(scratch_slapd, receive_timeout=5, login_timeout=1)
    scratch_slapd.pause()
    try:
        started = time.monotonic()
        error = await login_error(auth, "alice", "alice-pw")
        elapsed = time.monotonic() - started
    finally:
        scratch_slapd.resume()
    assert error.log_message == "The login service (LDAP) did not answer in 1 s; try again later."
    assert elapsed < 2


async def test_stopped_server_gets_a_clear_error_fast_and_does_not_count_as_failures(scratch_slapd):
    auth = make_authenticator(scratch_slapd, throttle_free_failures=2)
    scratch_slapd.stop()
    try:
        for _ in range(4):
            started = time.monotonic()
            error = await login_error(auth, "alice", "alice-pw")
            assert time.monotonic() - started < 1
            assert error.status_code == 503
            assert error.log_message == (
                "The login service (LDAP) cannot be reached right now; try again later."
            )
    finally:
        scratch_slapd.start()
    # The outage did not use up alice's free failures: she gets straight in.
    assert (await login(auth, "alice", "alice-pw"))["name"] == "alice"


# ---------------------------------------------------------------------- TLS


def _write_ca_and_server_cert(folder):
    """A CA and a server certificate for the name "localhost" (only), signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    validity = dict(not_valid_before=now - datetime.timedelta(minutes=5),
                    not_valid_after=now + datetime.timedelta(days=1))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "condorhub test CA")])
    ca_cert = (
        x509.CertificateBuilder(**validity)
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder(**validity)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "server.key").chmod(0o600)
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.fixture(scope="module")
def tls_slapd(ldap_home_base):
    """A slapd offering StartTLS with a certificate from a private CA; yields (server, ca.pem)."""
    base = scratch_dir("condorhub-tls-")
    ca, cert, key = _write_ca_and_server_cert(base)
    server = start_seeded_slapd(base / "slapd", ldap_home_base, tls_cert_file=cert, tls_key_file=key)
    yield server, ca
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


async def test_tls_refuses_an_untrusted_certificate_by_default(tls_slapd):
    server, _ = tls_slapd
    # The default strategy (StartTLS) and trust store: the private CA is not in it.
    auth = make_authenticator(server, server_address="localhost", tls_strategy="before_bind")
    error = await login_error(auth, "alice", "alice-pw")
    assert error.status_code == 503
    assert "presented a certificate this hub does not trust" in error.log_message


async def test_tls_with_the_sites_ca_file_logs_in(tls_slapd):
    server, ca = tls_slapd
    auth = make_authenticator(server, server_address="localhost", tls_strategy="before_bind",
                              tls_ca_file=str(ca))
    user = await login(auth, "alice", "alice-pw")
    assert user["name"] == "alice"
    assert user["auth_state"]["roles"] == ["student"]


async def test_tls_checks_the_server_name_too(tls_slapd):
    server, ca = tls_slapd
    # Trusted CA, but the certificate is for "localhost", not for "127.0.0.1": still refused.
    auth = make_authenticator(server, server_address="127.0.0.1", tls_strategy="before_bind",
                              tls_ca_file=str(ca))
    error = await login_error(auth, "alice", "alice-pw")
    assert "presented a certificate this hub does not trust" in error.log_message


def test_missing_ca_file_is_a_clear_configuration_error(slapd):
    with pytest.raises(Exception, match="tls_ca_file '/nonexistent/ca.pem' does not exist"):
        make_authenticator(slapd, tls_ca_file="/nonexistent/ca.pem")
