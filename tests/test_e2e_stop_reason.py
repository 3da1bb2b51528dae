"""Users see who stopped their server: a real hub (its idle culler service running with the default settings),
OpenLDAP and login-node servers. carol is an admin of this hub and stops alice's server through the REST API,
as the admin page does; alice's home page then names her. A stop of one's own server says nothing of anyone.
(Idle culling and the runtime limit: tests/test_condor_culling.py.)"""

from __future__ import annotations

import shutil
import time

import pytest

from tests.support.hub import Hub, HubClient, demo_site
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.e2e, pytest.mark.ldap]


@pytest.fixture(scope="module")
def hub(slapd):
    work = scratch_dir("condorhub-stop-reason-")
    site = demo_site(slapd.uri, slapd.suffix, work / "state")
    site["hub"]["admin_users"] = ["carol"]
    hub = Hub(work, site).start()
    yield hub
    hub.stop()
    hub.kill_servers()
    shutil.rmtree(work, ignore_errors=True)


def logged_in(hub: Hub, user: str) -> HubClient:
    client = hub.client()
    assert client.login(user, f"{user}-pw", follow=False).status_code == 302
    return client


def wait_stopped(client: HubClient, user: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.api("GET", f"/users/{user}").json()["servers"]:
        assert time.monotonic() < deadline, f"{user}'s server did not stop"
        time.sleep(0.3)


def home_reason(client: HubClient) -> str:
    page = client.http.get(f"{client.url}/hub/home", timeout=30).text
    start = page.find('class="alert alert-info condorhub-stop-reason"')
    return page[start : page.find("</div>", start)].split(">", 1)[1].strip() if start >= 0 else ""


def test_an_admin_who_stops_a_students_server_is_named_on_the_students_home_page(hub):
    alice, carol = logged_in(hub, "alice"), logged_in(hub, "carol")
    alice.spawn_form()  # one profile: no form, the server starts
    alice.wait_for_server("alice", timeout=60)
    # Only the idle culler may ask the hub to judge a server (and so record a reason): not a user, not an admin.
    for client in (alice, carol):
        refused = client.api("POST", "/condorhub/culling/alice/")
        assert refused.status_code == 403 and "custom:condorhub-culling:decide" in refused.json()["message"]
    r = carol.api("DELETE", "/users/alice/server")
    assert r.status_code in (202, 204), r.text
    wait_stopped(alice, "alice")
    assert home_reason(alice).startswith("Your server was stopped by carol (an admin of the hub).")

    # Started again, the reason is gone; stopped by alice herself, there is nothing to say.
    alice.spawn_form()
    alice.wait_for_server("alice", timeout=60)
    assert home_reason(alice) == ""
    assert alice.api("DELETE", "/users/alice/server").status_code in (202, 204)
    wait_stopped(alice, "alice")
    assert home_reason(alice) == ""
    # The idle culler ran beside all this, asking the hub about nobody (no server was idle for 2 h).
    log = hub.log_tail(2000)
    assert "GET /hub/api/users?state=" in log and "(idle-culler@" in log
    assert "(idle-culler@127.0.0.1)" not in "".join(line for line in log.splitlines() if "/condorhub/culling/" in line)
