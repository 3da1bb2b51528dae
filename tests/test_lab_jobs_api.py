"""The Jobs API (labextension/jobs/) in alice's real server, with her own HTCondor token, against the real pool:
scripts with live output, remove/hold/release/resubmit, a 2 × 2 notebook scan through papermill as one
cluster, crafted requests refused with nothing submitted, an unreachable schedd, and only alice's jobs listed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import htcondor2
import nbformat
import pytest

from tests.support.jobs_lab import STUDENT_PROFILES, JobsLab
from tests.support.ports import free_port

pytestmark = [pytest.mark.condor, pytest.mark.ldap]

SLOW = """\
import sys, time
n = int(sys.argv[1])
for i in range(n):
    print(f"line {i}", flush=True)
    time.sleep(1)
print("oops", file=sys.stderr)
sys.exit(3)
"""

SLEEP = "import time\ntime.sleep(600)\n"


def wait_for(check, timeout: float = 180, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def job_of(lab: JobsLab, job_id: str) -> dict | None:
    reply = lab.jobs_api("GET", "jobs")
    assert reply.code == 200, reply
    assert reply.json["schedd"] == "ok", reply
    return next((j for j in reply.json["jobs"] if j["id"] == job_id), None)


def folders(home: Path) -> set[str]:
    """Every folder under the user's jobs/ (what a refused submit must not leave behind)."""
    return {p.relative_to(home).as_posix() for p in (home / "jobs").rglob("*") if p.is_dir()}


def state_of(lab: JobsLab, job_id: str) -> str | None:
    job = job_of(lab, job_id)
    return job["state"] if job else None


def submit(lab: JobsLab, **body) -> dict:
    reply = lab.jobs_api("POST", "jobs", json_body={"profile": "cpu", **body})
    assert reply.code == 200, reply
    return reply.json["job"]


def alices_jobs() -> list[dict]:
    """The queue as the hub sees it (its token, in this process): every job of alice's."""
    schedd = htcondor2.Schedd()
    wanted = ("ClusterId", "ProcId", "JobStatus")
    # Only those: the schedd adds its ServerTime to every answer, which differs between two queries.
    return [{k: ad.get(k) for k in wanted} for ad in schedd.query('Owner == "alice"', projection=list(wanted))]


@pytest.fixture(autouse=True)
def no_job_outlives_its_test(condor_pool):
    # A sleeper left running would hold a slot the next test needs.
    yield
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, 'Owner == "alice" && CondorhubJob =?= true')


@pytest.fixture
def alice(jobs_lab):
    return jobs_lab("alice")


def test_a_script_shows_its_output_while_it_runs_and_ends_with_its_exit_code(alice):
    alice.write("work/slow.py", SLOW)
    job = submit(alice, path="work/slow.py", arguments="8", folder="jobs/slow")
    assert job["file"] == "work/slow.py" and job["folder"] == "jobs/slow" and job["profile"] == "cpu"
    assert job["state"] in ("queued", "running")
    assert job["stdout"] == "jobs/slow/job.out"

    seen, offset, live = "", 0, False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        reply = alice.jobs_api("GET", f"jobs/{job['id']}/output", params={"stream": "stdout", "offset": offset})
        assert reply.code == 200, reply
        seen += reply.json["data"]
        assert reply.json["offset"] >= offset
        offset = reply.json["offset"]
        if "line 1" in seen and "line 7" not in seen and state_of(alice, job["id"]) == "running":
            live = True  # lines arrived while the job still ran
        if reply.json["done"]:
            break
        time.sleep(0.5)
    assert live, f"no output while the job ran; got {seen!r}"
    assert reply.json["done"], "the output never said done"
    assert seen.splitlines() == [f"line {i}" for i in range(8)]
    final = job_of(alice, job["id"])
    assert final["state"] == "failed" and final["exit_code"] == 3, final
    assert final["finished"] and final["started"] and final["submitted"]
    err = alice.jobs_api("GET", f"jobs/{job['id']}/output", params={"stream": "stderr", "offset": 0})
    assert err.json["data"].strip() == "oops" and err.json["done"]
    # The submit description lies next to the output, for condor_submit by hand.
    assert "queue" in (alice.home / "jobs/slow/submit.sub").read_text()

    # Resubmit: the same script again, into a new folder next to the old one.
    again = alice.jobs_api("POST", f"jobs/{job['id']}/resubmit")
    assert again.code == 200, again
    new = again.json["job"]
    assert new["id"] != job["id"] and new["folder"] == "jobs/slow-2" and new["file"] == "work/slow.py"
    wait_for(lambda: state_of(alice, new["id"]) == "failed", what="the resubmitted job to end")
    assert (alice.home / "jobs/slow-2/job.out").read_text().splitlines()[-1] == "line 7"


def test_remove_hold_and_release(alice):
    alice.write("work/sleep.py", SLEEP)
    victim = submit(alice, path="work/sleep.py")
    other = submit(alice, path="work/sleep.py")

    held = alice.jobs_api("POST", f"jobs/{other['id']}/hold")
    assert held.code == 200, held
    assert held.json["job"]["state"] == "held", held.json
    assert held.json["job"]["hold_reason"] == "Held from the Lab's Jobs panel (by user alice)", held.json
    released = alice.jobs_api("POST", f"jobs/{other['id']}/release")
    assert released.code == 200 and released.json["job"]["state"] in ("queued", "running"), released

    removed = alice.jobs_api("POST", f"jobs/{victim['id']}/remove")
    assert removed.code == 200, removed
    assert removed.json["job"]["state"] == "removed"
    cluster = int(victim["cluster"])
    wait_for(lambda: cluster not in [j["ClusterId"] for j in alices_jobs()], what="the removed job to leave the queue")
    # The other job is untouched, and the removed one is listed as removed (history).
    assert state_of(alice, other["id"]) in ("queued", "running")
    assert state_of(alice, victim["id"]) == "removed"
    alice.jobs_api("POST", f"jobs/{other['id']}/remove")


def tiny_notebook() -> str:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("lr = 0.1\nlayers = 1")
    params.metadata["tags"] = ["parameters"]
    work = nbformat.v4.new_code_cell(
        "import json, os\n"
        "json.dump({'lr': lr, 'layers': layers, 'cuda': os.environ.get('CUDA_VISIBLE_DEVICES'),\n"
        "           'cwd': os.getcwd()}, open('result.json', 'w'))\n"
        "print('trained', lr, layers)"
    )
    nb.cells = [params, work]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb)


def test_a_2x2_notebook_scan_is_one_cluster_of_alices_jobs_one_folder_per_point(alice):
    alice.write("course/scan_me.ipynb", tiny_notebook())
    body = {"path": "course/scan_me.ipynb", "profile": "gpu1", "folder": "scans/first",
            "grid": {"lr": "0.01, 0.1", "layers": ["1", "2"]}}  # fmt: skip
    preview = alice.jobs_api("POST", "scans/preview", json_body=body)
    assert preview.code == 200, preview
    assert "queue lr,layers from (" in preview.json["description"] and preview.json["cluster"] is None
    reply = alice.jobs_api("POST", "scans", json_body=body)
    assert reply.code == 200, reply
    scan = reply.json
    assert scan["count"] == 4 and scan["folder"] == "scans/first"
    assert scan["pattern"] == "lr_(?P<lr>[^/]+)/layers_(?P<layers>[^/]+)/.*"
    cluster = scan["cluster"]
    ads = htcondor2.Schedd().query(f"ClusterId == {cluster}", projection=["ProcId", "Owner", "RequestGPUs"])
    assert sorted(ad["ProcId"] for ad in ads) == [0, 1, 2, 3]
    assert {ad["Owner"] for ad in ads} == {"alice"}

    def all_done():
        r = alice.jobs_api("GET", f"scans/{cluster}")
        assert r.code == 200, r
        states = [p["state"] for p in r.json["points"]]
        assert not {"failed", "held", "removed"} & set(states), r.json
        return r.json if states == ["done"] * 4 else None

    grid = wait_for(all_done, timeout=420, interval=2, what="the 4 scan points to finish")
    assert grid["params"] == ["lr", "layers"]
    assert sorted((p["params"]["lr"], p["params"]["layers"]) for p in grid["points"]) == [
        ("0.01", "1"), ("0.01", "2"), ("0.1", "1"), ("0.1", "2")]  # fmt: skip
    for lr in ("0.01", "0.1"):
        for layers in ("1", "2"):
            point = alice.home / "scans/first" / f"lr_{lr}" / f"layers_{layers}"
            result = json.loads((point / "result.json").read_text())
            # papermill injected the point's values (as numbers) and ran in the point's folder on a GPU slot.
            assert result["lr"] == float(lr) and result["layers"] == int(layers), result
            assert result["cwd"] == str(point)
            assert result["cuda"], f"no CUDA_VISIBLE_DEVICES in the GPU point {point}: {result}"
            executed = nbformat.read(point / "scan_me.ipynb", as_version=4)
            assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
            assert (point / "scan_me.ipynb").stat().st_uid == alice.uid


def test_crafted_requests_are_refused_and_nothing_is_submitted(alice, ldap_home_base):
    alice.write("ok.py", "print('hi')\n")
    alice.write("nox.sh", "#!/bin/sh\necho hi\n", mode=0o644)
    alice.write(".hidden.py", "print('hi')\n")
    alice.write("notes.txt", "hi\n")
    alice.write("course/scan_me.ipynb", tiny_notebook())
    outside = Path(ldap_home_base).parent / "outside.py"
    outside.write_text("print('not yours')\n")
    link = alice.home / "escape.py"
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    os.lchown(link, alice.uid, alice.gid)
    bob_file = Path(ldap_home_base) / "bob" / "x.py"
    before, made = alices_jobs(), folders(alice.home)

    cases = [
        ({"path": "../../bob/x.py"}, 400, "'..' is not allowed"),
        ({"path": str(bob_file)}, 400, "absolute paths are not accepted"),
        ({"path": "escape.py"}, 403, "outside the Lab's root"),
        ({"path": ".hidden.py"}, 403, "hidden"),
        ({"path": "ok.py", "profile": "gpu2"}, 400, "There is no profile 'gpu2'. You can choose: cpu, gpu1"),
        ({"path": "nox.sh"}, 400, "chmod +x"),
        ({"path": "notes.txt"}, 400, "only Python scripts (.py), shell scripts (.sh) and notebooks"),
        ({"path": "missing.py"}, 404, "no such file"),
        ({"path": "ok.py", "folder": "../elsewhere"}, 400, "'..' is not allowed"),
        ({"path": "ok.py", "arguments": "$ENV(JUPYTERHUB_API_TOKEN)\nqueue 1000"}, 400, "line break"),
    ]
    for body, code, words in cases:
        for endpoint in ("jobs", "jobs/preview"):
            reply = alice.jobs_api("POST", endpoint, json_body={"profile": "cpu", **body})
            assert reply.code == code and words in reply.message, (endpoint, body, reply)

    scans = [
        ({"lr": ""}, "has no values"),
        ({}, "give the scan's parameters"),
        ({"a": "1:100", "b": "1:100"}, "10,000 combinations (100 × 100); at most 1,000"),
        ({"lr": "1:3:-1"}, "never reaches its end"),
        ({"lr": "0.1, ../x"}, "cannot be a scan value"),
    ]
    for grid, words in scans:
        reply = alice.jobs_api("POST", "scans", json_body={"path": "course/scan_me.ipynb", "profile": "cpu",
                                                           "grid": grid})  # fmt: skip
        assert reply.code == 400 and words in reply.message, (grid, reply)

    # A $ in an argument is text, never a macro: the server's environment does not reach the (public) ad.
    preview = alice.jobs_api("POST", "jobs/preview", json_body={"path": "ok.py", "profile": "cpu",
                                                                "arguments": "'$ENV(HOME)'"})  # fmt: skip
    assert preview.code == 200 and "$(DOLLAR)ENV(HOME)" in preview.json["description"], preview
    assert alices_jobs() == before, "a refused request submitted something"
    assert folders(alice.home) == made, "a refused request left a folder behind"


def test_the_pool_refuses_what_the_role_does_not_allow_and_the_api_says_why(jobs_lab):
    # A server offered more than alice's role allows (a hub misconfiguration, or a crafted environment): the
    # pool's own limit (issue 12 part 2) still holds, and its reason reaches the Lab as it is.
    gpu2 = {**STUDENT_PROFILES[1], "slug": "gpu2", "display_name": "2 GPUs", "gpus": 2}
    lab = jobs_lab("alice", profiles=[*STUDENT_PROFILES, gpu2])
    lab.write("ok.py", "print('hi')\n")
    before, made = alices_jobs(), folders(lab.home)
    reply = lab.jobs_api("POST", "jobs", json_body={"path": "ok.py", "profile": "gpu2", "folder": "jobs/two-gpus"})
    assert reply.code == 400, reply
    assert reply.message.startswith("The pool refused: ") and "at most 1 GPU(s) per job; this job asks for 2" in reply.message
    assert alices_jobs() == before and folders(lab.home) == made
    assert lab.jobs_api("POST", "jobs", json_body={"path": "ok.py", "profile": "gpu1"}).code == 200


def test_an_unreachable_schedd_is_a_503_with_a_message(jobs_lab, ldap_home_base):
    home = Path(ldap_home_base) / "alice"
    config = home / ".condor-nowhere.conf"
    config.write_text(f"COLLECTOR_HOST = 127.0.0.1:{free_port()}\nSEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS\n")
    os.chown(config, 10001, 10001)
    try:
        lab = jobs_lab("alice", env={"CONDOR_CONFIG": str(config)}, client=False)
        lab.write("ok.py", "print('hi')\n")
        made = folders(home)
        started = time.monotonic()
        reply = lab.jobs_api("POST", "jobs", json_body={"path": "ok.py", "profile": "cpu"})
        assert reply.code == 503, reply
        assert reply.message.startswith("The HTCondor queue cannot be reached: ") and "try again" in reply.message
        listing = lab.jobs_api("GET", "jobs")
        assert listing.code == 200 and listing.json["schedd"] == "unreachable", listing
        assert listing.json["message"] and [p["slug"] for p in listing.json["profiles"]] == ["cpu", "gpu1"]
        assert time.monotonic() - started < 60
        assert folders(home) == made, "a folder was left behind"
    finally:
        config.unlink(missing_ok=True)


def test_only_alices_jobs_are_listed(alice):
    # bob's job, submitted by the hub for him (held: it never runs).
    schedd = htcondor2.Schedd()
    result = schedd.submit(htcondor2.Submit({"executable": "/bin/sleep", "arguments": "600", "hold": "true",
                                             "transfer_executable": "false", "should_transfer_files": "NO",
                                             "allowed_job_duration": "600", "+Owner": '"bob"',
                                             "+CondorhubJob": "true"}))  # fmt: skip
    bobs = f"{result.cluster()}.0"
    try:
        alice.write("work/sleep.py", SLEEP)
        mine = submit(alice, path="work/sleep.py")
        listing = alice.jobs_api("GET", "jobs").json
        ids = [j["id"] for j in listing["jobs"]]
        assert mine["id"] in ids and bobs not in ids
        assert [p["slug"] for p in listing["profiles"]] == [p["slug"] for p in STUDENT_PROFILES]
        # Nor can alice act on it through the API.
        for action in ("remove", "release"):
            reply = alice.jobs_api("POST", f"jobs/{bobs}/{action}")
            assert reply.code == 404, reply
        assert alice.jobs_api("GET", f"jobs/{bobs}/output").code == 404
        assert schedd.query(f"ClusterId == {result.cluster()}", projection=["JobStatus"])[0]["JobStatus"] == 5
        alice.jobs_api("POST", f"jobs/{mine['id']}/remove")
    finally:
        schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {result.cluster()}")


COURSE_03 = Path(__file__).resolve().parents[1] / "notebooks" / "course" / "03_parameter_scan.ipynb"

STAND_IN_RUN = """\
for lr, layers in itertools.product(LEARNING_RATES, HIDDEN_LAYERS):  # notebook 03's run(): same folders
    folder = Path(SCAN_DIR) / f"lr_{lr:g}" / f"layers_{layers}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"lr": lr, "layers": layers, "epochs": EPOCHS,
                                                     "cwd": os.getcwd()}))
"""


def test_notebook_03_submits_its_scan_as_one_cluster(alice):
    """The course notebook's cluster section, run by alice with SUBMIT = True (as she would), in a stand-in
    notebook with 03's settings and folder layout but no TensorFlow (the test pool's nodes have none)."""
    (section,) = [c for c in nbformat.read(COURSE_03, as_version=4).cells
                  if "condorhub-cluster-scan" in c.metadata.get("tags", [])]  # fmt: skip
    assert "SUBMIT = False" in section.source  # the course default: nothing is submitted by "Run All"
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        "LEARNING_RATES = [1e-2, 1e-3]\nHIDDEN_LAYERS = [1]\nEPOCHS = 1\nEVENTS_PER_CLASS = 10\n"
        "VALIDATION_PER_CLASS = 10\nBATCH_SIZE = 8\nDATA_DIR = 'data'\nSCAN_DIR = 'scan'\nSEED = 0"
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell("import itertools, json, os\nfrom pathlib import Path"), params,
                nbformat.v4.new_code_cell(STAND_IN_RUN),
                nbformat.v4.new_code_cell(section.source.replace("SUBMIT = False", "SUBMIT = True", 1))]  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    alice.write("course/03_parameter_scan.ipynb", nbformat.writes(nb))
    runner = (
        "import nbformat, sys\nfrom nbclient import NotebookClient\n"
        "nb = nbformat.read('03_parameter_scan.ipynb', as_version=4)\n"
        "NotebookClient(nb, timeout=120, kernel_name='python3').execute()\n"
        "print(''.join(o.get('text', '') for o in nb.cells[-1].outputs))\n"
    )
    env = {"HOME": str(alice.home), "USER": "alice", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "LANG": "C.UTF-8", **alice.server_env}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", runner], cwd=alice.home / "course", env=env, capture_output=True,
                          text=True, timeout=300, user=alice.uid, group=alice.gid, extra_groups=[])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    cluster = int(re.search(r"cluster (\d+): 2 jobs", done.stdout).group(1))
    assert "queue lr,layers from (\n0.01, 1\n0.001, 1\n)" in done.stdout  # what HTCondor got, shown to her
    ads = htcondor2.Schedd().query(f"ClusterId == {cluster}", projection=["ProcId", "Owner"])
    assert sorted(ad["ProcId"] for ad in ads) == [0, 1] and {ad["Owner"] for ad in ads} == {"alice"}

    def finished():
        r = alice.jobs_api("GET", f"scans/{cluster}")  # the Jobs panel shows it as a scan
        assert r.code == 200, r
        states = [p["state"] for p in r.json["points"]]
        assert not {"failed", "held", "removed"} & set(states), (r.json, job_errors(alice, cluster))
        return states == ["done", "done"]

    wait_for(finished, timeout=300, interval=2, what="the notebook's 2 scan jobs")
    for lr in ("0.01", "0.001"):
        point = alice.home / "course/scan-cluster" / f"lr_{lr}" / "layers_1"
        metrics = json.loads((point / "metrics.json").read_text())
        assert metrics == {"lr": float(lr), "layers": 1, "epochs": 1, "cwd": str(point)}
        executed = nbformat.read(point / "03_parameter_scan.ipynb", as_version=4)
        # papermill's one-point grid; the job's own copy of the cell did not submit again (SCAN_POINT)
        assert any("SCAN_POINT = True" in c.source for c in executed.cells)
        assert "cluster " not in "".join(o.get("text", "") for o in executed.cells[-1].get("outputs", []))


def job_errors(lab: JobsLab, cluster: int) -> str:
    return "\n".join(p.read_text()[-1500:] for p in (lab.home / "course/scan-cluster").rglob("job.err"))
