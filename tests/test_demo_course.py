"""The demo as its users see it: the demo's own site file (devstack/run.py ``demo_site``) with its course, on the
suite's directory and pool (its own folder and ports, so a developer's demo may run beside it).

- alice (students) finds carol's course, published at demo up through the hub's publish path, in
  ``~/courses/dl-intro`` of her login-node server; in a Lab terminal ``python``, ``pip`` and ``tensorboard`` are
  her server's environment, and notebook 01 runs there as she would run it (papermill, from the terminal);
- in her HTCondor (1 GPU) server's terminal too, with the course stack (TensorFlow) of the GPU node;
- erin (admins) stops that server as a hub admin (the REST call of the admin page's "stop"), the job leaves the
  queue; a user who is no admin cannot.
"""

from __future__ import annotations

import json
import shutil
import time

import htcondor2
import pytest

from devstack import node_root as nr
from devstack.course import TEACHING_FOLDER, publish_demo_course
from devstack.directory import DEMO_USERS
from devstack.run import demo_site
from tests.support.hub import Hub, HubClient
from tests.support.lab_terminal import LabTerminal
from tests.support.ports import free_port
from tests.support.scratch import scratch_dir

pytestmark = [pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

SLUG = "dl-intro"


@pytest.fixture(scope="module")
def demo(slapd, condor_pool, ldap_home_base):
    work = scratch_dir("condorhub-demo-course-")
    site = demo_site(condor_pool, demo_dir=work, hub_url=f"http://127.0.0.1:{free_port()}",
                     hub_bind_url=f"http://127.0.0.1:{free_port()}",
                     proxy_api_url=f"http://127.0.0.1:{free_port()}",
                     ldap_port=int(slapd.uri.rsplit(":", 1)[1]), suffix=slapd.suffix)
    site["htcondor"]["poll_interval"] = 1  # the test's patience, not the demo's
    published = publish_demo_course(site, DEMO_USERS, str(ldap_home_base))
    hub = Hub(work, site).start()
    hub.published = published
    hub.server_venv = site["hub"]["server_venv"]
    yield hub
    print(hub.log_tail(80))  # shown when a test of this module failed
    hub.stop()
    hub.kill_servers()
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f'CondorhubUser == "alice" && JobStatus != 3')
    shutil.rmtree(work, ignore_errors=True)


def login(hub: Hub, user: str) -> HubClient:
    client = hub.client()
    assert client.login(user, f"{user}-pw", follow=False).status_code == 302, f"{user} cannot log in"
    return client


def start(client: HubClient, user: str, profile: str, timeout: float = 180) -> None:
    page = client.spawn_form({"profile": profile})
    assert page.status_code == 200, page.text[-2000:]
    client.wait_for_server(user, timeout=timeout)


def stop(client: HubClient, user: str) -> None:
    reply = client.api("DELETE", f"/users/{user}/server", timeout=60)
    assert reply.status_code in (202, 204), reply.text
    wait_until(f"{user}'s server to stop", lambda: not client.api("GET", "/user").json()["servers"])


def wait_until(what: str, predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
    return value


def course_pull(client: HubClient, user: str) -> dict:
    """The server's pull of the demo course, once it is over (condorhub/api/courses)."""

    def done():
        reply = client.http.get(f"{client.url}/user/{user}/condorhub/api/courses", timeout=10)
        assert reply.status_code == 200, reply.text
        state = {c["slug"]: c for c in reply.json()["courses"]}.get(SLUG)
        return state if state and state["state"] not in ("waiting", "pulling") else None

    return wait_until(f"the {SLUG} pull in {user}'s server", done, timeout=90)


def alice_jobs() -> list[dict]:
    return [dict(ad) for ad in htcondor2.Schedd().query('CondorhubUser == "alice" && JobStatus != 3',
                                                        projection=["ClusterId", "JobStatus"])]


def test_alice_finds_the_course_and_runs_notebook_01_in_her_login_node_terminal(demo, ldap_home_base):
    assert "carol published" in demo.published, demo.published
    alice = login(demo, "alice")
    start(alice, "alice", "login-node")
    pull = course_pull(alice, "alice")
    assert pull["state"] == "done", pull
    with LabTerminal(alice, "alice") as terminal:
        # The server's environment, not the system's (whose python3 has no numpy and `python` does not exist).
        found = terminal.run("command -v python pip tensorboard").split()
        assert found == [f"{demo.server_venv}/bin/{tool}" for tool in ("python", "pip", "tensorboard")], found
        listing = terminal.run(f"cd ~/courses/{SLUG} && ls").split()
        assert {"01_hello_digits.ipynb", "02_root_to_tensorflow.ipynb", "03_parameter_scan.ipynb"} <= set(listing)
        out = terminal.run("python -m papermill --no-progress-bar 01_hello_digits.ipynb ~/01-run.ipynb "
                           "-p EPOCHS 5 && echo NOTEBOOK-OK", timeout=240)
        assert "NOTEBOOK-OK" in out, out[-3000:]
    ran = json.loads((ldap_home_base / "alice" / "01-run.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                   for c in ran["cells"] for o in c.get("outputs", []))
    assert "test accuracy:" in text, text[-2000:]
    assert not [o for c in ran["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    # The material carol got at demo up is hers: in her home, owned by her.
    folder = ldap_home_base / "carol" / TEACHING_FOLDER
    assert (folder / "01_hello_digits.ipynb").stat().st_uid == 10003
    stop(alice, "alice")


def test_alice_s_gpu_server_has_the_course_stack_and_the_admin_stops_it(demo):
    alice = login(demo, "alice")
    start(alice, "alice", "gpu-1", timeout=240)
    assert len(alice_jobs()) == 1
    with LabTerminal(alice, "alice") as terminal:
        found = terminal.run("command -v python pip tensorboard").split()
        assert found == [f"{nr.WORKER_VENV}/bin/{tool}" for tool in ("python", "pip", "tensorboard")], found
        out = terminal.run("python -c 'import tensorflow, sklearn, uproot; print(\"TF\", tensorflow.__version__)' "
                           "2>/dev/null", timeout=120)
        assert "TF 2." in out, out
    # dave is no admin: to him alice's server does not exist (JupyterHub answers 404 to a user without
    # access, so as not to tell him who exists), and it keeps running.
    dave = login(demo, "dave")
    assert dave.api("DELETE", "/users/alice/server").status_code == 404
    assert len(alice_jobs()) == 1
    # erin is: the admin page lists alice's server, and its stop (DELETE, as the page sends it) ends the job.
    erin = login(demo, "erin")
    assert erin.http.get(f"{demo.url}/hub/admin", timeout=30).status_code == 200
    servers = erin.api("GET", "/users/alice").json()["servers"]
    assert servers[""]["user_options"]["profile"] == "gpu-1", servers
    assert erin.api("DELETE", "/users/alice/server", timeout=60).status_code in (202, 204)
    wait_until("alice's server to stop", lambda: not erin.api("GET", "/users/alice").json()["servers"])
    wait_until("alice's job to leave the queue", lambda: not alice_jobs())
