"""End to end: a real hub (subprocess) behind configurable-http-proxy, a real OpenLDAP, real servers.

A browser-like client logs in on the login form (XSRF included), starts a login-node server and talks to
it through the proxy. No DummyAuthenticator, no mocked LDAP.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
import requests

from tests.support.hub import Hub, demo_site
from tests.support.ldap import start_seeded_slapd
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.e2e, pytest.mark.ldap]

INVALID = "Invalid username or password"


@pytest.fixture(scope="module")
def directory(ldap_home_base):
    """A slapd of this module's own: the outage tests stop and hang it."""
    base = scratch_dir("condorhub-e2e-ldap-")
    server = start_seeded_slapd(base, ldap_home_base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(directory):
    work = scratch_dir("condorhub-e2e-hub-")
    site = demo_site(directory.uri, directory.suffix, work / "state", connect_timeout=2, receive_timeout=2)
    hub = Hub(work, site).start()
    yield hub
    hub.stop()
    # cleanup_servers is off (servers survive hub restarts), so the servers are ended here.
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


def test_alice_logs_in_starts_a_login_node_server_and_reaches_it(hub, ldap_home_base):
    alice = hub.client()
    page = alice.login("alice", "alice-pw")
    assert page.status_code == 200
    assert alice.logged_in_as() == "alice"

    # Her JupyterHub groups are her LDAP groups.
    model = alice.api("GET", "/user").json()
    assert model["groups"] == ["students"]
    assert model["admin"] is False

    alice.spawn_form({"profile": "login-node"})
    status = alice.wait_for_server("alice")
    assert "started" in status

    # The server runs as alice's LDAP uid: a file written through Jupyter's contents API lands in her
    # home, owned by uidNumber 10001 / gidNumber 10000.
    xsrf = alice.http.cookies.get("_xsrf", path="/user/alice/") or alice.http.cookies.get("_xsrf")
    put = alice.http.put(
        f"{hub.url}/user/alice/api/contents/hello.txt",
        json={"type": "file", "format": "text", "content": "hi"},
        headers={"X-XSRFToken": xsrf},
        timeout=15,
    )
    assert put.status_code in (200, 201), put.text
    written = ldap_home_base / "alice" / "hello.txt"
    assert written.read_text() == "hi"
    st = os.stat(written)
    assert (st.st_uid, st.st_gid) == (10001, 10000)
    # ... hers alone: the server's umask is 077 (users share a primary group), and so is her home
    assert oct(st.st_mode & 0o777) == "0o600"
    home = os.stat(ldap_home_base / "alice")
    assert (home.st_uid, oct(home.st_mode & 0o777)) == (10001, "0o700")


def test_bob_is_in_the_researchers_group(hub):
    bob = hub.client()
    bob.login("bob", "bob-pw")
    assert bob.api("GET", "/user").json()["groups"] == ["researchers"]


@pytest.mark.parametrize(
    "username, password",
    [
        ("alice", "wrong-password"),
        ("mallory", "mallory-pw"),
        ("*)(uid=*", "x"),
        ("alice)(|(uid=*", "alice-pw"),
    ],
    ids=["wrong-password", "unknown-user", "injection-wildcard", "injection-or"],
)
def test_bad_logins_get_the_login_page_with_an_error_and_nothing_more(hub, username, password):
    client = hub.client()
    page = client.login(username, password)
    assert page.url.split("?")[0].endswith("/hub/login")
    assert INVALID in page.text
    assert client.logged_in_as() is None
    assert not any(c.name.startswith("jupyterhub-session") for c in client.http.cookies)


def test_a_crafted_spawn_request_is_refused_and_nothing_starts(hub):
    dave = hub.client()
    assert dave.login("dave", "dave-pw", follow=False).status_code == 302
    crafted = dave.http.post(
        f"{hub.url}/hub/spawn",
        data={"profile": "login-node", "gpus": "8", "_xsrf": dave.http.cookies.get("_xsrf")},
        timeout=30,
    )
    assert crafted.status_code == 400
    assert "Unsupported option(s) &#39;gpus&#39;" in crafted.text or "Unsupported option(s) 'gpus'" in crafted.text
    other = dave.http.post(
        f"{hub.url}/hub/spawn",
        data={"profile": "gpu-8", "_xsrf": dave.http.cookies.get("_xsrf")},
        timeout=30,
    )
    assert other.status_code == 400 and "no profile" in other.text
    server = dave.api("GET", "/user").json()["servers"]
    assert server == {} or server.get("", {}).get("ready") is not True


def test_hung_ldap_fails_logins_within_the_timeout_but_other_users_are_served(hub, directory):
    carol = hub.client()
    carol.login("carol", "carol-pw")
    assert carol.logged_in_as() == "carol"

    directory.pause()  # slapd accepts TCP connections (kernel backlog) but never answers: a hung server
    try:
        outcome = {}

        def login_while_hung():
            start = time.monotonic()
            outcome["page"] = hub.client().login("dave", "dave-pw", timeout=60)
            outcome["seconds"] = time.monotonic() - start

        worker = threading.Thread(target=login_while_hung)
        worker.start()
        time.sleep(0.5)  # the login is now waiting on LDAP
        # Meanwhile carol's hub API requests are answered promptly: the LDAP wait is off the event loop.
        delays = []
        for _ in range(5):
            start = time.monotonic()
            assert carol.api("GET", "/user").status_code == 200
            delays.append(time.monotonic() - start)
            time.sleep(0.2)
        worker.join(30)
        assert max(delays) < 1.0, delays
        page = outcome["page"]
        # connect 2 s + receive 2 s configured: the answer comes within those plus slack.
        assert outcome["seconds"] < 2 + 2 * 2 + 3, outcome["seconds"]
        assert "The login service (LDAP) did not answer" in page.text
        assert page.status_code == 503
    finally:
        directory.resume()


def test_stopped_ldap_gives_a_clear_error_fast(hub, directory):
    directory.stop()
    try:
        start = time.monotonic()
        page = hub.client().login("alice", "alice-pw")
        assert time.monotonic() - start < 5
        assert "The login service (LDAP) cannot be reached right now" in page.text
    finally:
        directory.start()
    assert hub.client().login("alice", "alice-pw").ok


def test_repeated_failures_are_throttled_with_a_clear_message(hub):
    client = hub.client()
    for _ in range(5):
        assert INVALID in client.login("bob", "not-bobs-password").text
    page = client.login("bob", "bob-pw")  # even the right password waits now
    assert page.status_code == 429
    assert "Too many failed logins for this account; try again in" in page.text
    # Another account from the same address is not locked out.
    assert hub.client().login("alice", "alice-pw").ok


def test_a_site_file_with_a_typo_stops_the_hub_naming_the_key(directory):
    work = scratch_dir("condorhub-e2e-typo-")
    try:
        site = demo_site(directory.uri, directory.suffix, work / "state")
        site["ldap"]["recieve_timeout"] = site["ldap"].pop("receive_timeout")
        hub = Hub(work, site)
        with pytest.raises(RuntimeError) as err:
            hub.start(timeout=30)
        assert hub.proc.returncode == 2
        assert "`ldap.recieve_timeout`: unknown key; did you mean `ldap.receive_timeout`?" in str(err.value)
        with pytest.raises(requests.ConnectionError):
            requests.get(hub.url, timeout=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
