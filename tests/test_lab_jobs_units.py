"""Pure logic of the Jobs API (labextension/jobs/): profiles from the hub's environment, parameter values and
ranges, the grid, the submit description (what HTCondor gets and the user sees), ClassAd → Job, output
offsets. The same code against the real pool: tests/test_lab_jobs_api.py."""

from __future__ import annotations

import json

import classad2
import htcondor2
import pytest

from condorhub.lab.jobs import describe as d
from condorhub.lab.jobs import model, output
from condorhub.lab.jobs.profiles import DEFAULT_MAX_POINTS, ProfilesError, parse_max_points, parse_profiles

CPU = {"slug": "cpu", "display_name": "CPU", "cpus": 2, "memory_mb": 4096, "gpus": 0, "runtime_seconds": 3600}
GPU = {"slug": "gpu1", "display_name": "1 GPU", "cpus": 2, "memory_mb": 4096, "gpus": 1, "runtime_seconds": 28800,
       "gpus_minimum_capability": 7.5, "gpus_minimum_memory_mb": 10000, "a_newer_key": "ignored"}  # fmt: skip


# ------------------------------------------------------------------------------------------ profiles


def test_profiles_come_in_the_hubs_order_and_unset_means_none():
    profiles = parse_profiles(json.dumps([GPU, CPU]))
    assert [p.slug for p in profiles] == ["gpu1", "cpu"]
    assert profiles[0].gpus_minimum_capability == 7.5 and profiles[0].to_json()["gpus"] == 1
    assert parse_profiles(None) == [] and parse_profiles("") == [] and parse_profiles("[]") == []


@pytest.mark.parametrize(
    "text, words",
    [("{", "not JSON"), ('{"slug": "cpu"}', "JSON list"), ('[{"cpus": 1}]', "needs a slug"),
     ('[{"slug": "x", "gpus": -1}]', "gpus must be a whole number")],
)  # fmt: skip
def test_a_broken_profile_list_says_what_is_wrong(text, words):
    with pytest.raises(ProfilesError, match=words):
        parse_profiles(text)


def test_scan_limit_defaults_to_1000():
    assert parse_max_points(None) == DEFAULT_MAX_POINTS == 1000 and parse_max_points("50") == 50
    with pytest.raises(ProfilesError, match="at least 1"):
        parse_max_points("0")


# ------------------------------------------------------------------------------------- values, grid


@pytest.mark.parametrize(
    "raw, values",
    [("0.001, 0.01, 0.1", ["0.001", "0.01", "0.1"]), ("1:10:2", ["1", "3", "5", "7", "9"]),
     ("1:4", ["1", "2", "3", "4"]), ("0.1:0.3:0.1", ["0.1", "0.2", "0.3"]), ("4:1:-1", ["4", "3", "2", "1"]),
     ("1, 5:9:2", ["1", "5", "7", "9"]), (["relu", "tanh"], ["relu", "tanh"]), ([1, 2.5], ["1", "2.5"]),
     ("1e-3,1e-4", ["1e-3", "1e-4"])],
)  # fmt: skip
def test_values_lists_and_ranges(raw, values):
    assert d.parse_values("p", raw, 1000) == values


@pytest.mark.parametrize(
    "raw, words",
    [("", "has no values"), ([], "has no values"), ("1,,2", "empty value"), ("1:x", "not a range"),
     ("1:2:3:4", "not a range"), ("1:3:0", "never reaches"), ("3:1", "never reaches"),
     ("1:100000", "100000 values, more than the 1000"), ("a/b", "cannot be a scan value"),
     ("x y", "cannot be a scan value"), ("1, 1", "lists 1 twice"),
     ({"a": 1}, "as a list or as text"), ([True], "as text")],
)  # fmt: skip
def test_bad_values_name_the_problem(raw, words):
    with pytest.raises(d.Refused, match=words.replace("(", r"\(")):
        d.parse_values("p", raw, 1000)


def test_a_grid_is_the_product_in_order_with_the_scan_browsers_pattern():
    grid = d.parse_grid({"lr": "0.01, 0.1", "layers": [1, 2]}, 1000)
    assert grid.count == 4
    assert grid.points() == [{"lr": "0.01", "layers": "1"}, {"lr": "0.01", "layers": "2"},
                             {"lr": "0.1", "layers": "1"}, {"lr": "0.1", "layers": "2"}]  # fmt: skip
    assert grid.point_folder(grid.points()[1]) == "lr_0.01/layers_2"
    import re

    match = re.fullmatch(grid.pattern(), "lr_0.01/layers_2/scan.ipynb")
    assert match and match.groupdict() == {"lr": "0.01", "layers": "2"}


@pytest.mark.parametrize(
    "raw, words",
    [({}, "give the scan's parameters"), (None, "give the scan's parameters"),
     ({"a": "1:100", "b": "1:100"}, "10,000 combinations (100 × 100); at most 1,000"),
     ({"1x": "1"}, "not a parameter name"), ({f"p{i}": "1" for i in range(9)}, "at most 8 parameters")],
)  # fmt: skip
def test_bad_grids_are_refused(raw, words):
    with pytest.raises(d.Refused, match=re_escape(words)):
        d.parse_grid(raw, 1000)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


# ------------------------------------------------------------------------------------------ requests


@pytest.mark.parametrize(
    "body, words",
    [({}, 'give the file to run as "path"'), ({"path": "x.txt", "profile": "cpu"}, "only Python scripts (.py)"),
     ({"path": "x.py"}, "choose a resource profile"),
     ({"path": "x.py", "profile": "cpu", "environment": "conda"}, "is not offered"),
     ({"path": "x.py", "profile": "cpu", "arguments": "'unclosed"}, "close the quote"),
     ({"path": "x.py", "profile": "cpu", "arguments": "a\nqueue 100"}, "line break"),
     ({"path": "x.py", "profile": "cpu", "folder": "out\nqueue"}, "line break"),
     ({"path": "x.py", "profile": "cpu", "parameters": {"bad name": "1"}}, "not a parameter name"),
     ({"path": "x.py", "profile": "cpu", "parameters": {"n": "1\r2"}}, "line break")],
)  # fmt: skip
def test_bad_requests_are_refused(body, words):
    with pytest.raises(d.Refused, match=re_escape(words)):
        d.parse_request(body)


def test_an_unknown_profile_names_the_choices():
    profiles = parse_profiles(json.dumps([CPU, GPU]))
    assert d.choose_profile("gpu1", profiles).gpus == 1
    with pytest.raises(d.Refused, match="There is no profile 'gpu2'. You can choose: cpu, gpu1"):
        d.choose_profile("gpu2", profiles)


def plan(path="work/train.py", grid=None, **body):
    request = d.parse_request({"path": path, "profile": "gpu1", **body})
    return d.Plan(
        request=request,
        profile=parse_profiles(json.dumps([GPU]))[0],
        python="/opt/env/bin/python",
        script=f"/home/alice/{path}",
        rel_file=path,
        folder="/home/alice/jobs/train-1",
        rel_folder="jobs/train-1",
        home="/home/alice",
        grid=d.parse_grid(grid, 1000) if grid else None,
    )


def test_a_script_job_runs_the_servers_python_with_the_profiles_resources():
    desc = d.build(plan(arguments="--epochs 3 'two words'", parameters={"seed": "7"}))
    c = desc.commands
    assert c["executable"] == "/opt/env/bin/python"
    assert c["arguments"] == "\"'/home/alice/work/train.py' '--epochs' '3' 'two words' '--seed' '7'\""
    assert c["initialdir"] == "/home/alice/jobs/train-1" and c["output"] == "job.out" and c["error"] == "job.err"
    assert c["should_transfer_files"] == "NO" and c["getenv"] == "false"
    assert (c["request_cpus"], c["request_memory"], c["request_gpus"]) == ("2", "4096MB", "1")
    assert (c["gpus_minimum_capability"], c["gpus_minimum_memory"], c["allowed_job_duration"]) == ("7.5", "10000", "28800")
    assert "PYTHONUNBUFFERED='1'" in c["environment"] and "PATH='/opt/env/bin:" in c["environment"]
    assert c["MY.CondorhubJob"] == "true" and c["MY.CondorhubFile"] == '"work/train.py"'
    assert c["batch_name"] == "train"
    text = desc.text()
    assert text.endswith("\nqueue\n") and "accounting_group" not in text  # the pool sets it, not the Lab
    # What resubmit needs, as a ClassAd string the bindings read back.
    request = json.loads(classad2.ExprTree(c["MY.CondorhubRequest"]).eval())
    assert request == {"path": "work/train.py", "profile": "gpu1", "arguments": ["--epochs", "3", "two words"],
                       "parameters": {"seed": "7"}}  # fmt: skip


def test_no_secret_of_the_server_and_no_macro_reaches_the_public_ad():
    desc = d.build(plan(arguments="'$ENV(JUPYTERHUB_API_TOKEN)' '$(Owner)'", parameters={"x": "$$([1])"}))
    text = desc.text()
    assert "$ENV(" not in text.replace("$(DOLLAR)ENV(", "") and "$(DOLLAR)(Owner)" in text
    assert "$(DOLLAR)$(DOLLAR)([1])" in desc.commands["arguments"]
    assert "JUPYTERHUB" not in desc.commands["environment"] and desc.commands["getenv"] == "false"


def test_a_shell_script_is_its_own_executable():
    desc = d.build(plan(path="run.sh", arguments="a b"))
    assert desc.commands["executable"] == "/home/alice/run.sh"
    assert desc.commands["arguments"] == "\"'a' 'b'\"" and desc.commands["transfer_executable"] == "false"


def test_a_notebook_runs_through_papermill_with_its_parameters():
    desc = d.build(plan(path="nb/fit.ipynb", arguments="ignored", parameters={"epochs": "3"}))
    assert desc.commands["executable"] == "/opt/env/bin/python"
    assert desc.commands["arguments"] == (
        "\"'-m' 'papermill' '--log-output' '--no-progress-bar' '/home/alice/nb/fit.ipynb' 'fit.ipynb' "
        "'-p' 'epochs' '3'\""
    )


def test_a_scan_is_one_cluster_with_item_data_and_a_folder_per_point():
    desc = d.build(plan(path="nb/fit.ipynb", grid={"lr": "0.01, 0.1", "layers": "1:2"}))
    c = desc.commands
    assert c["initialdir"] == "/home/alice/jobs/train-1/lr_$(lr)/layers_$(layers)"
    assert "'-p' 'lr' '$(lr)' '-p' 'layers' '$(layers)'" in c["arguments"]
    assert c["MY.CondorhubScan"] == "$(ClusterId)" and c["MY.CondorhubScanValues"] == '"$(lr) $(layers)"'
    assert desc.count == 4 and desc.queue_names == ("lr", "layers")
    assert desc.text().endswith("queue lr,layers from (\n0.01, 1\n0.01, 2\n0.1, 1\n0.1, 2\n)\n")
    assert d.point_folders(plan(path="nb/fit.ipynb", grid={"lr": "0.01, 0.1"})) == ["lr_0.01", "lr_0.1"]


def test_the_description_parses_as_htcondor_submit_language():
    desc = d.build(plan(path="nb/fit.ipynb", grid={"lr": "0.01, 0.1"}, arguments="'$x'"))
    sub = htcondor2.Submit(desc.text())
    assert [dict(i) for i in sub.itemdata()] == [{"lr": "0.01"}, {"lr": "0.1"}]
    assert sub["request_gpus"] == "1"


# ------------------------------------------------------------------------------------------- model


def ad(**kw):
    base = {"ClusterId": 12, "ProcId": 0, "JobStatus": 2, "Owner": "alice", "QDate": 100, "JobStartDate": 110,
            "Iwd": "/home/alice/jobs/x", "Out": "job.out", "Err": "/home/alice/jobs/x/job.err", "JobBatchName": "x",
            "CondorhubFile": "x.py", "CondorhubProfile": "cpu"}  # fmt: skip
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "kw, state, code",
    [({"JobStatus": 1}, "queued", None), ({"JobStatus": 2}, "running", None), ({"JobStatus": 5}, "held", None),
     ({"JobStatus": 7}, "suspended", None), ({"JobStatus": 3}, "removed", None),
     ({"JobStatus": 4, "ExitCode": 0}, "done", 0), ({"JobStatus": 4, "ExitCode": 2}, "failed", 2),
     ({"JobStatus": 4, "ExitBySignal": True, "ExitSignal": 9}, "failed", None)],
)  # fmt: skip
def test_states_and_exit_codes(kw, state, code):
    job = model.to_job(ad(**kw), "/home/alice")
    assert (job["state"], job["exit_code"]) == (state, code)


def test_a_job_in_words_with_paths_relative_to_the_root():
    job = model.to_job(ad(JobStatus=5, HoldReason="via condor_hold (by user alice)"), "/home/alice")
    assert job["id"] == "12.0" and job["name"] == "x" and job["hold_reason"].startswith("via condor_hold")
    assert (job["folder"], job["stdout"], job["stderr"]) == ("jobs/x", "jobs/x/job.out", "jobs/x/job.err")
    assert model.to_job(ad(Iwd="/scratch/x"), "/home/alice")["folder"] is None  # the Lab cannot open it
    scan = model.to_job(ad(CondorhubScan=12, CondorhubScanParams="lr layers", CondorhubScanValues="0.1 2"), "/h")
    assert scan["scan"] == {"cluster": 12, "params": {"lr": "0.1", "layers": "2"}}


def test_queue_and_history_merge_newest_first_history_wins():
    q = [ad(ClusterId=3, ProcId=1), ad(ClusterId=3, ProcId=0), ad(ClusterId=5, JobStatus=2)]
    h = [ad(ClusterId=5, JobStatus=4, ExitCode=0)]
    merged = model.merge(q, h)
    assert [model.job_id(a) for a in merged] == ["5.0", "3.0", "3.1"] and merged[0]["JobStatus"] == 4


def test_a_scan_summary_keeps_the_newest_job_of_each_point():
    params = {"CondorhubScan": 7, "CondorhubScanParams": "lr", "CondorhubFolder": "scans/a"}
    ads = [ad(ClusterId=7, ProcId=0, JobStatus=4, ExitCode=1, CondorhubScanValues="0.1", **params),
           ad(ClusterId=7, ProcId=1, JobStatus=4, ExitCode=0, CondorhubScanValues="0.2", **params),
           ad(ClusterId=9, ProcId=0, JobStatus=2, CondorhubScanValues="0.1", **params)]  # fmt: skip
    summary = model.scan_summary(7, ads, "/home/alice")
    assert summary["folder"] == "scans/a" and summary["params"] == ["lr"]
    assert summary["points"] == [{"params": {"lr": "0.1"}, "state": "running", "id": "9.0", "exit_code": None},
                                 {"params": {"lr": "0.2"}, "state": "done", "id": "7.1", "exit_code": 0}]  # fmt: skip
    assert model.scan_summary(7, [], "/h") is None


# ------------------------------------------------------------------------------------------- output


def test_output_from_an_offset_cuts_at_a_character_boundary(tmp_path):
    path = tmp_path / "job.out"
    assert output.read_from(str(path), 0) == ("", 0)  # not started yet
    path.write_bytes("line 1\nä".encode()[:-1])  # the job has written half of "ä"
    data, offset = output.read_from(str(path), 0)
    assert data == "line 1\n" and offset == 7
    path.write_bytes("line 1\näb\n".encode())
    assert output.read_from(str(path), offset) == ("äb\n", 11)
    assert output.read_from(str(path), 11) == ("", 11) and output.at_end(str(path), 11)
    assert output.read_from(str(path), 500)[0].startswith("line 1")  # written anew: from the start
    big = tmp_path / "big.out"
    big.write_bytes(b"x" * 300_000)
    data, offset = output.read_from(str(big), 0)
    assert len(data) == offset == output.MAX_CHUNK
