"""The demo as its users see it: the demo's own site file (devstack/run.py ``demo_site``) with its course, on the
suite's directory and pool (its own folder and ports, so a developer's demo may run beside it).

- alice (students) finds carol's course, published at demo up through the hub's publish path, in
  ``~/courses/dl-intro`` of her login-node server; in a Lab terminal ``python``, ``pip`` and ``tensorboard`` are
  her server's environment, and notebook 01 runs there as she would run it (papermill, from the terminal);
- in her HTCondor (1 GPU) server's terminal too, with the course stack (TensorFlow) of the GPU node, where
  notebook 03's last section submits its scan as one HTCondor cluster whose jobs train on the node;
- heidi (admins) stops that server as a hub admin (the REST call of the admin page's "stop"), the job leaves the
  queue; a user who is no admin cannot.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import htcondor2
import pytest

from devstack import node_root as nr
from devstack.course import DEMO_COURSE, TEACHING_FOLDER, publish_demo_course
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
    # Where the session's pool node sees course repositories (read-only, as the demo's node sees the demo's):
    # a folder of its own there, so that no other test's course of the same name is ours.
    site["hub"]["courses_dir"] = str(condor_pool.courses_dir / "demo-course")
    published = publish_demo_course(site, DEMO_USERS, str(ldap_home_base))
    hub = Hub(work, site).start()
    hub.published = published
    hub.server_venv = site["hub"]["server_venv"]
    yield hub
    print(hub.log_tail(80))  # shown when a test of this module failed
    hub.stop()
    hub.kill_servers()
    # alice's server and her scan's jobs, if a test left them
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, 'Owner == "alice" && (CondorhubUser == "alice" || '
                                                       'JobBatchName == "03-scan") && JobStatus != 3')
    shutil.rmtree(work, ignore_errors=True)
    # The session's homes are shared by every module, and other modules publish a course of the same slug
    # (test_e2e_courses' dl-intro): leave no clone of this demo course behind for their pull to trip over.
    home = Path(ldap_home_base)
    shutil.rmtree(home / "alice" / "courses" / DEMO_COURSE["slug"], ignore_errors=True)
    shutil.rmtree(home / "carol" / TEACHING_FOLDER, ignore_errors=True)


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
        out = terminal.run("python -m papermill --no-progress-bar --execution-timeout 180 01_hello_digits.ipynb ~/01-run.ipynb "
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


# The notebook with its cluster section switched on, as alice switches it (SUBMIT = True), beside the original.
SUBMITTING = (
    "import nbformat; nb = nbformat.read(\"03_parameter_scan.ipynb\", as_version=4); "
    "[c.__setitem__(\"source\", c.source.replace(\"SUBMIT = False\", \"SUBMIT = True\", 1)) for c in nb.cells "
    "if \"condorhub-cluster-scan\" in c.metadata.get(\"tags\", [])]; nbformat.write(nb, \"03-submit.ipynb\")"
)


def test_alice_s_gpu_server_runs_the_course_and_its_scan_and_the_admin_stops_it(demo, ldap_home_base):
    alice = login(demo, "alice")
    start(alice, "alice", "gpu-1", timeout=240)
    assert len(alice_jobs()) == 1
    assert course_pull(alice, "alice")["state"] == "done"  # from the hub's courses folder, read-only in the node
    with LabTerminal(alice, "alice") as terminal:
        found = terminal.run("command -v python pip tensorboard").split()
        assert found == [f"{nr.WORKER_VENV}/bin/{tool}" for tool in ("python", "pip", "tensorboard")], found
        out = terminal.run("python -c 'import tensorflow, sklearn, uproot; print(\"TF\", tensorflow.__version__)' "
                           "2>/dev/null", timeout=120)
        assert "TF 2." in out, out
        # Notebook 03's last section, as its text tells her: SUBMIT = True, run. Small numbers (what papermill
        # sets), a 1 x 2 grid: one cluster of two jobs, each training its point with TensorFlow on the node.
        terminal.run(f"cd ~/courses/{SLUG} && python -c '{SUBMITTING}'")
        out = terminal.run(
            # a cell that hangs fails the run (papermill waits forever by default)
            "python -m papermill --no-progress-bar --execution-timeout 180 03-submit.ipynb ~/03-run.ipynb -y "
            "'{LEARNING_RATES: [0.01], HIDDEN_LAYERS: [1, 2], EPOCHS: 1, EVENTS_PER_CLASS: 1500, "
            "VALIDATION_PER_CLASS: 500, CHUNK_SIZE: 2000}' > ~/03-run.log 2>&1; echo PAPERMILL-$?", timeout=300)
        assert "PAPERMILL-0" in out, (ldap_home_base / "alice" / "03-run.log").read_text()[-3000:]
    ran = json.loads((ldap_home_base / "alice" / "03-run.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in ran["cells"] for o in c.get("outputs", []))
    cluster = int(re.search(r"cluster (\d+): 2 jobs", printed).group(1))
    scan = ldap_home_base / "alice" / "courses" / SLUG / "scan-cluster" / "lr_0.01"

    def finished():
        if htcondor2.Schedd().query(f"ClusterId == {cluster}", projection=["ProcId"]):
            return None
        return [dict(ad) for ad in htcondor2.Schedd().history(f"ClusterId == {cluster}",
                                                              projection=["ProcId", "ExitCode", "Owner"], match=2)]

    try:
        done = wait_until("the scan's two jobs to finish", finished, timeout=300)
    except AssertionError as err:
        tails = {p.parent.name + "/" + p.name: p.read_text(errors="replace")[-1500:] for p in sorted(scan.glob("*/job.*"))
                 if p.name in ("job.err", "job.out")}
        raise AssertionError(f"{err}; the jobs' output: {json.dumps(tails, indent=1)}") from None
    assert sorted((j["ProcId"], j["ExitCode"], j["Owner"]) for j in done) == [(0, 0, "alice"), (1, 0, "alice")]
    for layers in (1, 2):
        metrics = json.loads((scan / f"layers_{layers}" / "metrics.json").read_text())
        assert metrics["layers"] == layers and metrics["auc"] > 0.6, metrics
    # dave is no admin: to him alice's server does not exist (JupyterHub answers 404 to a user without
    # access, so as not to tell him who exists), and it keeps running.
    dave = login(demo, "dave")
    assert dave.api("DELETE", "/users/alice/server").status_code == 404
    assert len(alice_jobs()) == 1
    # heidi is: the admin page lists alice's server, and its stop (DELETE, as the page sends it) ends the job.
    heidi = login(demo, "heidi")
    assert heidi.http.get(f"{demo.url}/hub/admin", timeout=30).status_code == 200
    servers = heidi.api("GET", "/users/alice").json()["servers"]
    assert servers[""]["user_options"]["profile"] == "gpu-1", servers
    assert heidi.api("DELETE", "/users/alice/server", timeout=60).status_code in (202, 204)
    wait_until("alice's server to stop", lambda: not heidi.api("GET", "/users/alice").json()["servers"])
    wait_until("alice's job to leave the queue", lambda: not alice_jobs())
