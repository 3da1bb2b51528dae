"""The failed-login throttle against a real hub behind configurable-http-proxy, a real slapd, real clients.

What is attacked here (issue 10, item 4):

* configurable-http-proxy passes the client's own ``X-Real-Ip`` and ``X-Forwarded-For`` through (it only
  *appends* the address it saw to X-Forwarded-For); tornado's ``xheaders`` make ``remote_ip`` the client's
  X-Real-Ip. Rotating it escaped the per-address throttle, and naming a classroom's address locked that
  classroom out. The clients here have distinct real addresses: each binds its TCP connection to its own
  loopback address (the whole 127.0.0.0/8 is local on Linux), so the proxy sees 127.0.0.21, 127.0.0.22, ...
* attempts were counted as failures before LDAP answered, so a class logging in at once (all with the right
  password, all from one NAT address) was refused "Too many failed logins".
* a refused *service account* bind (lookup mode) looked like the user's wrong password and was counted.

And what keeps the per-address throttle from locking out a lecture hall by its own typos: a browser a
user logged in from before is not held back by its address for that user (known-browser cookie).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from requests.adapters import HTTPAdapter

from condorhub.auth.known_browsers import COOKIE_NAME
from devstack.directory import DEMO_GID_NUMBER, DEMO_USERS, DemoUser, directory_ldif, ssha_password
from devstack.slapd import OpenLDAPServer
from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.e2e, pytest.mark.ldap]

INVALID = "Invalid username or password"
ADDRESS_THROTTLED = "Too many failed logins from your network address"
ACCOUNT_THROTTLED = "Too many failed logins for this account"
SERVICE_ERROR = "The login service cannot reach the directory"

FREE_PER_USERNAME = 3
FREE_PER_ADDRESS = 5
FRONT_PROXY = "127.0.0.41"  # a further proxy in front of configurable-http-proxy, in trusted_proxies
LDAP_THREADS = 8  # the authenticator's default ldap_threads

#: A class of 100 students, as a course has them.
CLASS = tuple(
    DemoUser(f"pupil{i:03d}", f"pupil{i:03d}-pw", 20000 + i, DEMO_GID_NUMBER, "", "students", f"Pupil {i}")
    for i in range(1, 101)
)
SERVICE_DN_RDN = "cn=condorhub-lookup,ou=services"
SERVICE_PASSWORD = "lookup-service-pw"


class AddressAdapter(HTTPAdapter):
    """Connections from one local source address: the proxy sees this client at that address."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def client_at(hub: Hub, address: str, headers: dict | None = None) -> HubClient:
    """A browser-like client whose TCP connections come from ``address``, sending ``headers`` on each request."""
    client = HubClient(hub.url)
    client.http.mount("http://", AddressAdapter(address))
    client.http.headers.update(headers or {})
    return client


def login_page_text(client: HubClient, username: str, password: str):
    page = client.login(username, password, follow=False)
    return page.status_code, page.text


@pytest.fixture(scope="module")
def directory(ldap_home_base):
    """A slapd of this module's own: the demo users, a class of 100 and a lookup service account."""
    base = scratch_dir("condorhub-e2e-throttle-ldap-")
    server = OpenLDAPServer(base).start()
    server.add_ldif(directory_ldif(server.suffix, DEMO_USERS + CLASS, home_base=str(ldap_home_base)))
    server.add_ldif(
        f"dn: ou=services,{server.suffix}\nobjectClass: organizationalUnit\nou: services\n\n"
        f"dn: {SERVICE_DN_RDN},{server.suffix}\nobjectClass: inetOrgPerson\ncn: condorhub-lookup\n"
        f"sn: condorhub-lookup\nuserPassword: {ssha_password(SERVICE_PASSWORD)}\n"
    )
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def throttle_site(directory, work) -> dict:
    site = demo_site(directory.uri, directory.suffix, work / "state", connect_timeout=2, receive_timeout=2)
    site["login_throttle"] = {
        "free_failures": FREE_PER_USERNAME,
        "free_failures_per_address": FREE_PER_ADDRESS,
        "max_delay": 30,
        "trusted_proxies": [f"{FRONT_PROXY}/32"],
    }
    return site


@pytest.fixture(scope="module")
def hub(directory):
    work = scratch_dir("condorhub-e2e-throttle-hub-")
    hub = Hub(work, throttle_site(directory, work)).start()
    yield hub
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------- whose address is counted


def test_rotating_x_real_ip_and_x_forwarded_for_does_not_escape_the_address_throttle(hub):
    answers = []
    for i in range(FREE_PER_ADDRESS + 3):
        # A fresh made-up client address in both headers on every attempt (and a fresh username, so only
        # the address throttle can stop this).
        spoofed = {"X-Real-Ip": f"198.51.100.{i + 1}", "X-Forwarded-For": f"203.0.113.{i + 1}"}
        answers.append(login_page_text(client_at(hub, "127.0.0.21", spoofed), f"guess{i}", "guess"))
    assert [status for status, _ in answers[:FREE_PER_ADDRESS]] == [403] * FREE_PER_ADDRESS
    assert all(INVALID in text for _, text in answers[:FREE_PER_ADDRESS])
    for status, text in answers[FREE_PER_ADDRESS:]:
        assert status == 429 and ADDRESS_THROTTLED in text
    # Even a right password from that address waits now, whatever it claims to be.
    status, text = login_page_text(client_at(hub, "127.0.0.21", {"X-Real-Ip": "192.0.2.200"}), "carol", "carol-pw")
    assert status == 429 and ADDRESS_THROTTLED in text
    # The hub's log names the address the proxy saw, not a claimed one.
    assert "from address 127.0.0.21" in hub.log_tail(400)


def test_a_spoofed_classroom_address_does_not_lock_the_classroom_out(hub):
    classroom = "127.0.0.23"
    framing = {"X-Real-Ip": classroom, "X-Forwarded-For": classroom}
    for i in range(FREE_PER_ADDRESS + 5):
        login_page_text(client_at(hub, "127.0.0.22", framing), f"nobody{i}", "guess")
    # The attacker throttled itself...
    status, text = login_page_text(client_at(hub, "127.0.0.22", framing), "nobody-else", "guess")
    assert status == 429 and ADDRESS_THROTTLED in text
    # ...and the classroom is not touched.
    status, _ = login_page_text(client_at(hub, classroom), "alice", "alice-pw")
    assert status == 302


def test_a_trusted_front_proxy_passes_on_the_client_address(hub):
    # Behind a further proxy (in login_throttle.trusted_proxies) the client is the address it appended.
    def via_front_proxy(client_ip, username, password):
        return login_page_text(client_at(hub, FRONT_PROXY, {"X-Forwarded-For": client_ip}), username, password)

    for i in range(FREE_PER_ADDRESS):
        assert INVALID in via_front_proxy("192.0.2.77", f"front{i}", "guess")[1]
    status, text = via_front_proxy("192.0.2.77", "dave", "dave-pw")
    assert status == 429 and ADDRESS_THROTTLED in text
    # Another client behind the same front proxy is its own address...
    assert via_front_proxy("192.0.2.78", "dave", "dave-pw")[0] == 302
    # ...and a client that is not a trusted proxy cannot claim to be forwarding for someone.
    assert login_page_text(client_at(hub, "127.0.0.42", {"X-Forwarded-For": "192.0.2.77"}), "dave", "dave-pw")[0] == 302


def keep_only_the_known_login_cookie(client: HubClient) -> None:
    """The next day: the session is gone, the browser's long-lived known-login cookie is not."""
    for cookie in list(client.http.cookies):
        if cookie.name != COOKIE_NAME:
            client.http.cookies.clear(cookie.domain, cookie.path, cookie.name)


def test_a_lecture_halls_own_typos_do_not_hold_back_students_who_logged_in_there_before(hub):
    hall = "127.0.0.51"
    returning = {user: client_at(hub, hall) for user in CLASS[:4]}
    for user, client in returning.items():
        assert login_page_text(client, user.uid, user.password)[0] == 302
        assert any(c.name == COOKIE_NAME for c in client.http.cookies)
        keep_only_the_known_login_cookie(client)
    mallory = client_at(hub, hall)
    assert login_page_text(mallory, "dave", "dave-pw")[0] == 302  # her own account: she gets a cookie too
    keep_only_the_known_login_cookie(mallory)
    # Typos of other students use up the hall's free failures.
    for user in CLASS[10 : 10 + FREE_PER_ADDRESS]:
        assert INVALID in login_page_text(client_at(hub, hall), user.uid, "typo")[1]
    status, text = login_page_text(client_at(hub, hall), CLASS[20].uid, CLASS[20].password)
    assert status == 429 and ADDRESS_THROTTLED in text  # a browser new to that account waits
    # Students whose browsers logged in there before are not held back by the hall's address.
    for user, client in returning.items():
        assert login_page_text(client, user.uid, user.password)[0] == 302
    # A cookie names the user it was issued for: dave's does not let anyone guess alice's password,
    # and a cookie not signed by the hub is no cookie.
    status, text = login_page_text(mallory, "alice", "guess")
    assert status == 429 and ADDRESS_THROTTLED in text
    forged = client_at(hub, hall)
    forged.http.cookies.set(COOKIE_NAME, json.dumps([hashlib.sha256(b"alice").hexdigest()[:24]]), path="/hub/")
    status, text = login_page_text(forged, "alice", "alice-pw")
    assert status == 429 and ADDRESS_THROTTLED in text


# ---------------------------------------------------------------------- only answered wrong passwords count


def concurrent_logins(hub: Hub, address: str, credentials: list[tuple[str, str]]):
    """Log in with all ``credentials`` at once from ``address``; the answers (status, text) and the seconds."""
    clients = [client_at(hub, address) for _ in credentials]
    for client in clients:
        client.login_page().raise_for_status()  # the XSRF cookie, before the clock starts
    start = threading.Barrier(len(credentials) + 1)

    def post(client, username, password):
        start.wait()
        page = client.http.post(
            f"{hub.url}/hub/login?next=",
            data={"username": username, "password": password, "_xsrf": client._xsrf()},
            timeout=120,
            allow_redirects=False,
        )
        return page.status_code, page.text

    with ThreadPoolExecutor(len(credentials)) as pool:
        futures = [pool.submit(post, c, u, p) for c, (u, p) in zip(clients, credentials)]
        start.wait()
        began = time.monotonic()
        answers = [f.result() for f in futures]
        return answers, time.monotonic() - began


@pytest.mark.load
def test_a_class_of_100_logging_in_at_once_from_one_address_all_get_in(hub):
    answers, seconds = concurrent_logins(hub, "127.0.0.24", [(u.uid, u.password) for u in CLASS])
    refused = [(status, text[:200]) for status, text in answers if status != 302]
    print(f"\n100 concurrent correct logins (100 accounts) from one address: {seconds:.2f} s")
    assert refused == []


@pytest.mark.load
def test_100_concurrent_logins_of_4_accounts_from_one_address_all_get_in(hub):
    demo = [(u.uid, u.password) for u in DEMO_USERS[:4]] * 25  # 4 of the demo's people, 25 logins each
    answers, seconds = concurrent_logins(hub, "127.0.0.25", demo)
    refused = [(status, text[:200]) for status, text in answers if status != 302]
    print(f"\n100 concurrent correct logins (4 accounts) from one address: {seconds:.2f} s")
    assert refused == []


def test_parallel_guesses_for_one_account_get_no_more_tries_than_sequential_ones(hub):
    answers, _ = concurrent_logins(hub, "127.0.0.26", [("bob", f"guess-{i}") for i in range(20)])
    statuses = sorted(status for status, _ in answers)
    # Exactly the free failures reached LDAP; every other guess was refused without it.
    assert statuses == [403] * FREE_PER_USERNAME + [429] * (20 - FREE_PER_USERNAME)
    assert sum(INVALID in text for _, text in answers) == FREE_PER_USERNAME
    assert all(ACCOUNT_THROTTLED in text for status, text in answers if status == 429)


def test_parallel_guesses_from_one_address_are_bounded_by_the_ldap_threads(hub):
    answers, _ = concurrent_logins(hub, "127.0.0.27", [(f"spray{i}", "guess") for i in range(40)])
    reached_ldap = sum(INVALID in text for _, text in answers)
    # At most ldap_threads attempts are in flight when one is admitted, so at most that many minus one
    # can overtake the count of finished failures.
    assert FREE_PER_ADDRESS <= reached_ldap <= FREE_PER_ADDRESS + LDAP_THREADS - 1, reached_ldap
    assert all(ADDRESS_THROTTLED in text for status, text in answers if status == 429)


# ---------------------------------------------------------------------- the service account


@pytest.fixture(scope="module")
def lookup_hub(directory):
    """A hub that finds user DNs with the service account (site file ldap.lookup)."""
    work = scratch_dir("condorhub-e2e-lookup-hub-")
    password_file = work / "lookup-password"
    password_file.write_text(SERVICE_PASSWORD + "\n")
    password_file.chmod(0o600)
    site = throttle_site(directory, work)
    site["ldap"].pop("bind_dn_template")
    site["ldap"]["lookup"] = {
        "search_user": f"{SERVICE_DN_RDN},{directory.suffix}",
        "search_password_file": str(password_file),
    }
    hub = Hub(work, site).start()
    yield hub
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


def set_service_password(directory, password: str) -> None:
    directory.add_ldif(
        f"dn: {SERVICE_DN_RDN},{directory.suffix}\nchangetype: modify\nreplace: userPassword\n"
        f"userPassword: {ssha_password(password)}\n"
    )


def test_a_rotated_service_password_is_a_service_error_and_throttles_nobody(lookup_hub, directory):
    assert login_page_text(client_at(lookup_hub, "127.0.0.31"), "carol", "carol-pw")[0] == 302
    set_service_password(directory, "rotated-by-the-directory-admins")
    try:
        # More attempts than the free failures of the account and of the address, right and wrong passwords.
        for password in ["alice-pw", "typo"] * (FREE_PER_ADDRESS + 1):
            status, text = login_page_text(client_at(lookup_hub, "127.0.0.31"), "alice", password)
            assert status == 503, (status, text[:300])
            assert SERVICE_ERROR in text
            assert INVALID not in text
        log = lookup_hub.log_tail(200)
        assert f"service account {SERVICE_DN_RDN},{directory.suffix}" in log
        assert "ldap.lookup.search_password_file" in log
    finally:
        set_service_password(directory, SERVICE_PASSWORD)
    # The directory is fixed: alice gets in at once, neither she nor her address was counted.
    assert login_page_text(client_at(lookup_hub, "127.0.0.31"), "alice", "alice-pw")[0] == 302
    # And a wrong password is still a wrong password in lookup mode (and an unknown user too).
    assert INVALID in login_page_text(client_at(lookup_hub, "127.0.0.32"), "alice", "typo")[1]
    assert INVALID in login_page_text(client_at(lookup_hub, "127.0.0.32"), "nobody", "typo")[1]


def test_a_stopped_or_hung_directory_in_lookup_mode_is_a_service_error_and_throttles_nobody(lookup_hub, directory):
    directory.stop()
    try:
        for _ in range(FREE_PER_ADDRESS + 1):
            status, text = login_page_text(client_at(lookup_hub, "127.0.0.33"), "bob", "bob-pw")
            assert status == 503 and "The login service (LDAP) cannot be reached right now" in text
    finally:
        directory.start()
    directory.pause()  # accepts connections, never answers
    try:
        for _ in range(2):
            started = time.monotonic()
            status, text = login_page_text(client_at(lookup_hub, "127.0.0.33"), "bob", "bob-pw")
            assert status == 503 and "The login service (LDAP) did not answer" in text
            assert time.monotonic() - started < 2 + 2 * 2 + 3  # connect 2 s + receive 2 s, plus slack
    finally:
        directory.resume()
    assert login_page_text(client_at(lookup_hub, "127.0.0.33"), "bob", "bob-pw")[0] == 302
