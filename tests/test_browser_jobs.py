"""In Chromium: alice submits jobs and parameter scans from her JupyterLab to the real HTCondor pool, and
watches them in the Jobs panel (issue 12 parts 3-5; screenshots in test-artifacts/jobs-*.png).

alice's Lab is a real Jupyter server running as her Unix account with what the hub gives a server for
HTCondor (issue 12 part 1): her own IDTOKEN and CONDOR_CONFIG, her profiles in CONDORHUB_JOB_PROFILES
(tests/support/jobs_lab.py, the Jobs API tests' fixture). Its root is her shared home, which the pool's
node sees at the same path, so the jobs write where the Lab reads; each test works in a folder of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import pytest

from devstack.directory import DEMO_USERS
from tests.support.browser import chromium_page, screenshot
from tests.support.jobs_lab import STUDENT_PROFILES, JobsLab
from tests.support.ports import free_port

pytestmark = [pytest.mark.browser, pytest.mark.condor, pytest.mark.e2e, pytest.mark.ldap]

ALICE = next(u for u in DEMO_USERS if u.uid == "alice")

SLOW_SCRIPT = """\
import sys, time
for i in range(1, 9):
    print(f"line {i}", flush=True)
    time.sleep(2)
print("to stderr", file=sys.stderr, flush=True)
sys.exit(3)
"""

SCAN_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "execution_count": None, "id": "params", "metadata": {"tags": ["parameters"]},
         "outputs": [], "source": "lr = 0.0\nlayers = 0"},
        {"cell_type": "code", "execution_count": None, "id": "work", "metadata": {}, "outputs": [],
         "source": 'open("result.txt", "w").write(f"{lr} {layers}\\n")\nprint(lr, layers)'},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}  # fmt: skip


class Lab:
    """alice's Lab for one test: the server and the test's folder in her home."""

    def __init__(self, server: JobsLab, folder: str):
        self.server, self.folder = server, folder
        self.dir = server.home / folder

    def write(self, name: str, text: str, mode: int = 0o644) -> Path:
        return self.server.write(f"{self.folder}/{name}", text, mode)

    def path(self, name: str) -> str:
        """``name`` as the API names it (relative to the server root)."""
        return f"{self.folder}/{name}"

    def api(self, method: str, path: str, body=None):
        return self.server.jobs_api(method, path, json_body=body)

    def log_tail(self) -> str:
        return self.server.log()


@contextlib.contextmanager
def alice_lab(jobs_lab, ldap_home_base, env: dict[str, str] | None = None, client: bool = True):
    """alice's server (``env`` added to what the hub gives it), with a Lab configuration of its own (a fresh
    layout; no news prompt over the screenshots), and a folder for the test."""
    home = Path(ldap_home_base) / "alice"
    tag = secrets.token_hex(3)
    config = home / f".jobs-ui-config-{tag}"
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    folder = home / f"jobs-ui-{tag}"
    folder.mkdir()
    for path in (folder, config, *config.rglob("*")):
        os.lchown(path, ALICE.uid_number, ALICE.gid_number)
    try:
        server = jobs_lab("alice", env={"JUPYTER_CONFIG_DIR": str(config), **(env or {})}, client=client)
        yield Lab(server, folder.name)
    finally:
        shutil.rmtree(config, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def lab(jobs_lab, ldap_home_base):
    with alice_lab(jobs_lab, ldap_home_base) as lab:
        yield lab


# --- driving the Lab ---------------------------------------------------------------------------------------

PANEL = "#condorhub-jobs"
DIALOG = ".jp-condorhub-submit-dialog"


def open_lab(page, lab: Lab) -> None:
    """The Lab, its file browser in the test's folder."""
    page.goto(f"{lab.server.url}lab/tree/{lab.folder}?token={lab.server.token}")
    page.wait_for_selector(".jp-Launcher, .jp-LauncherCard", timeout=90_000)
    page.wait_for_selector(f"#filebrowser .jp-BreadCrumbs:has-text('{lab.folder}')", timeout=30_000)


def show_panel(page) -> None:
    if not page.locator(PANEL).is_visible():
        page.click(".jp-SideBar .lm-TabBar-tab[data-id='condorhub-jobs']")
    page.wait_for_selector(PANEL, state="visible", timeout=10_000)


def context_menu(page, name: str, item: str) -> None:
    """Right-click the file ``name`` in the file browser and pick ``item``."""
    if not page.locator("#filebrowser").is_visible():
        page.click(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']")
    entry = page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=name))
    entry.first.wait_for(timeout=30_000)
    entry.first.click(button="right")
    page.locator(".lm-Menu-item", has_text=item).click()
    page.wait_for_selector(DIALOG, timeout=30_000)


def submit_dialog(page, lab: Lab) -> str:
    """Press Submit; the dialog closes and the panel says what it submitted. Returns that line."""
    page.click(f"{DIALOG} .jp-Dialog-footer .jp-mod-accept")
    try:
        page.wait_for_selector(DIALOG, state="detached", timeout=60_000)
    except Exception:
        screenshot(page, "jobs-submit-failed")
        error = page.locator(f"{DIALOG} .jp-condorhub-submit-error").inner_text()
        raise AssertionError(f"the dialog stayed open: {error!r}\n{lab.log_tail()}") from None
    show_panel(page)
    status = page.locator(f"{PANEL} .jp-condorhub-jobs-status")
    page.wait_for_function(
        "el => /Submitted/.test(el.textContent)", arg=status.element_handle(), timeout=30_000
    )
    return status.inner_text()


def job_entry(page, job_id: str):
    return page.locator(f"{PANEL} .jp-condorhub-job[data-id='{job_id}']")


def wait_state(page, selector: str, states: set[str], timeout: float, lab: Lab) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        node = page.locator(selector)
        if node.count():
            state = node.first.get_attribute("data-state")
            if state in states:
                return state
        time.sleep(0.5)
    screenshot(page, "jobs-timeout")
    raise AssertionError(f"{selector} stayed {state!r}, not {states}\n{lab.log_tail()}")


def dialog_error(page) -> str:
    box = page.locator(f"{DIALOG} .jp-condorhub-submit-error")
    box.wait_for(state="visible", timeout=30_000)
    return box.inner_text().strip()


# --- tests -------------------------------------------------------------------------------------------------


def test_a_script_submitted_from_the_file_browser_shows_live_output_and_its_exit_code(lab):
    lab.write("slow.py", SLOW_SCRIPT)
    lab.write("sleeper.py", "import time\ntime.sleep(900)\n")
    with chromium_page() as page:
        open_lab(page, lab)
        context_menu(page, "slow.py", "Submit as HTCondor job…")
        # The dialog offers alice's profiles and no others (no 2-GPU profile for a student).
        slugs = page.locator(f"{DIALOG} .jp-condorhub-profile").evaluate_all("ls => ls.map(l => l.dataset.slug)")
        assert slugs == [p["slug"] for p in STUDENT_PROFILES] == ["cpu", "gpu1"]
        assert "1 CPU, 256 MB memory, at most 30 min" in page.locator(f"{DIALOG} .jp-condorhub-profile").first.inner_text()
        page.check(f"{DIALOG} .jp-condorhub-profile[data-slug=cpu] input")
        # The submit description the server will use, saved next to the script for condor_submit.
        page.click(f"{DIALOG} .jp-condorhub-submit-description summary")
        described = page.locator(f"{DIALOG} .jp-condorhub-submit-description-text")
        page.wait_for_function("el => /queue/i.test(el.textContent)", arg=described.element_handle(), timeout=30_000)
        description = described.inner_text()
        assert "slow.py" in description
        screenshot(page, "jobs-dialog")
        page.click(f"{DIALOG} .jp-condorhub-submit-save")
        page.wait_for_selector(f"{DIALOG} .jp-condorhub-submit-saved[data-path='{lab.path('slow.sub')}']",
                               timeout=30_000)
        assert (lab.dir / "slow.sub").read_text() == description
        assert (lab.dir / "slow.sub").stat().st_uid == ALICE.uid_number  # written by her server, as her

        said = submit_dialog(page, lab)
        job_id = re.search(r"as job (\d+\.\d+)", said).group(1)
        entry = job_entry(page, job_id)
        entry.wait_for(timeout=30_000)
        assert "CPU" in entry.locator(".jp-condorhub-job-info").inner_text()

        # Its output, appended while it still runs.
        entry.locator(".jp-condorhub-job-output").click()
        output = f".jp-condorhub-output[data-id='{job_id}']"
        page.wait_for_selector(output, timeout=30_000)
        seen_running = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state, text = page.locator(output).evaluate(
                "n => [n.dataset.state, n.querySelector('[data-stream=stdout] pre').textContent]"
            )
            if state == "running" and "line 1" in text and "line 8" not in text:
                seen_running = text
            if "line 8" in text:
                break
            time.sleep(0.3)
        assert seen_running, f"no output seen while the job ran\n{lab.log_tail()}"
        screenshot(page, "jobs-output-running")
        # Finished: the exit code in the panel and the tab, stderr too, nothing cut.
        wait_state(page, f"{PANEL} .jp-condorhub-job[data-id='{job_id}']", {"failed", "done"}, 120, lab)
        assert "exit code 3" in entry.locator(".jp-condorhub-job-detail").inner_text()
        assert entry.locator(".jp-condorhub-job-state").inner_text() == "failed"
        page.wait_for_selector(f"{output} [data-stream=stderr] pre:has-text('to stderr')", timeout=30_000)
        stdout = page.locator(f"{output} [data-stream=stdout] pre").inner_text()
        assert stdout.split() == [w for i in range(1, 9) for w in ("line", str(i))]
        assert "exit code 3" in page.locator(f"{output} .jp-condorhub-output-detail").inner_text()
        screenshot(page, "jobs-output-done")
        # Resubmit: the same script again, a new job in the panel.
        entry.locator(".jp-condorhub-job-resubmit").click()
        status = page.locator(f"{PANEL} .jp-condorhub-jobs-status")
        page.wait_for_function("el => /resubmitted as job/.test(el.textContent)", arg=status.element_handle(),
                               timeout=30_000)
        again = re.search(r"resubmitted as job (\d+\.\d+)", status.inner_text()).group(1)
        job_entry(page, again).wait_for(timeout=30_000)
        assert job_entry(page, again).locator(".jp-condorhub-job-name").inner_text() == "slow"

        # A second job, from the editor's toolbar, cancelled from the panel.
        page.click(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']")
        page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text="sleeper.py")).dblclick()
        page.locator(".jp-Document:visible [data-jp-item-name='condorhub-submit']").click(timeout=30_000)
        page.wait_for_selector(DIALOG, timeout=30_000)
        assert "sleeper.py" in page.locator(f"{DIALOG} .jp-condorhub-submit-file").inner_text()
        said = submit_dialog(page, lab)
        sleeper = re.search(r"as job (\d+\.\d+)", said).group(1)
        wait_state(page, f"{PANEL} .jp-condorhub-job[data-id='{sleeper}']", {"queued", "running"}, 60, lab)
        screenshot(page, "jobs-panel")
        # Hold: the state and HTCondor's reason in words; Release: back in the queue.
        job_entry(page, sleeper).locator(".jp-condorhub-job-hold").click()
        wait_state(page, f"{PANEL} .jp-condorhub-job[data-id='{sleeper}']", {"held"}, 60, lab)
        reason = next(j for j in lab.api("GET", "jobs").json["jobs"] if j["id"] == sleeper)["hold_reason"]
        assert reason and reason.rstrip(".") in job_entry(page, sleeper).locator(".jp-condorhub-job-detail").inner_text()
        screenshot(page, "jobs-held")
        job_entry(page, sleeper).locator(".jp-condorhub-job-release").click()
        wait_state(page, f"{PANEL} .jp-condorhub-job[data-id='{sleeper}']", {"queued", "running"}, 60, lab)
        job_entry(page, sleeper).locator(".jp-condorhub-job-remove").click()
        page.click(".jp-Dialog .jp-mod-accept:has-text('Cancel job')")
        # It turns "removed" in the panel (from the queue's history) or leaves the list.
        deadline = time.monotonic() + 60
        while job_entry(page, sleeper).count() and job_entry(page, sleeper).get_attribute("data-state") != "removed":
            assert time.monotonic() < deadline, f"{sleeper} not removed\n{lab.log_tail()}"
            time.sleep(0.5)
        listed = {j["id"]: j["state"] for j in lab.api("GET", "jobs").json["jobs"]}
        assert listed.get(sleeper, "removed") == "removed"


def test_a_two_by_two_scan_shows_four_points_and_opens_in_the_scan_browser(lab):
    lab.write("scan.ipynb", json.dumps(SCAN_NOTEBOOK))
    with chromium_page() as page:
        open_lab(page, lab)
        context_menu(page, "scan.ipynb", "Submit as parameter scan…")
        page.check(f"{DIALOG} .jp-condorhub-profile[data-slug=cpu] input")
        page.fill(f"{DIALOG} .jp-condorhub-submit-grid", "lr: 0.1, 0.2\nlayers: 1, 2")
        # The number of combinations, counted by the server as the user types.
        page.wait_for_selector(f"{DIALOG} .jp-condorhub-submit-count[data-count='4']", timeout=30_000)
        assert "4 combinations" in page.locator(f"{DIALOG} .jp-condorhub-submit-count").inner_text()
        screenshot(page, "jobs-scan-dialog")
        said = submit_dialog(page, lab)
        cluster = re.search(r"Submitted scan (\d+)", said).group(1)

        scan = f"{PANEL} .jp-condorhub-scan-entry[data-cluster='{cluster}']"
        page.wait_for_selector(scan, timeout=30_000)
        points = page.locator(f"{scan} .jp-condorhub-scan-point")
        assert points.count() == 4
        # One cell per combination: rows lr, columns layers.
        assert page.locator(f"{scan} .jp-condorhub-scan-colhead").all_inner_texts() == ["1", "2"]
        assert page.locator(f"{scan} .jp-condorhub-scan-rowhead").all_inner_texts() == ["lr=0.1", "lr=0.2"]
        ids = points.evaluate_all("ps => ps.map(p => p.dataset.id)")
        assert len(set(ids)) == 4 and {i.split(".")[0] for i in ids} == {cluster}  # one cluster
        wait_state(page, scan, {"done"}, 300, lab)
        assert points.evaluate_all("ps => ps.map(p => p.dataset.state)") == ["done"] * 4
        assert "4 points: 4 done" in page.locator(f"{scan} .jp-condorhub-scan-counts").inner_text()
        screenshot(page, "jobs-scan-grid")
        # A click on a point shows that job's output.
        points.first.click()
        try:
            # papermill logs the cells' output (--log-output): "0.1 1" on stdout or stderr.
            page.wait_for_selector(f".jp-condorhub-output[data-id='{ids[0]}'] pre:has-text('0.1 1')", timeout=30_000)
        except Exception:
            screenshot(page, "jobs-scan-point-failed")
            raise
        screenshot(page, "jobs-scan-point-output")  # docs/img/jobs-panel.png is one of these

        # The scan browser on the scan's folder, with the scan's pattern filled in.
        expected = lab.api("GET", f"scans/{cluster}").json
        page.click(f"{scan} .jp-condorhub-scan-open")
        browser = ".jp-condorhub-scan:visible"
        page.wait_for_selector(f"{browser} .jp-condorhub-grid-table", timeout=30_000)
        assert page.input_value(f"{browser} .jp-condorhub-folder") == expected["folder"]
        assert page.input_value(f"{browser} .jp-condorhub-pattern") == expected["pattern"]
        assert page.locator(f"{browser} .jp-condorhub-cell").count() == 4
        screenshot(page, "jobs-scan-browser")


def test_bad_input_shows_the_servers_message_in_the_dialog_and_submits_nothing(lab):
    lab.write("grid.ipynb", json.dumps(SCAN_NOTEBOOK))
    lab.write("run.sh", "#!/bin/sh\necho hello\n", mode=0o644)  # not executable
    before = {j["id"] for j in lab.api("GET", "jobs").json["jobs"]}
    with chromium_page() as page:
        open_lab(page, lab)
        # An empty value list: the server's own sentence, as the user types it and again on Submit.
        context_menu(page, "grid.ipynb", "Submit as parameter scan…")
        page.fill(f"{DIALOG} .jp-condorhub-submit-grid", "lr: 0.1, 0.2\nlayers:")
        body = {"path": lab.path("grid.ipynb"), "profile": "cpu", "arguments": "", "parameters": {}, "environment": "server",
                "grid": {"lr": "0.1, 0.2", "layers": ""}}
        refused = lab.api("POST", "scans/preview", body)
        assert refused.code == 400, refused
        page.wait_for_function(
            "([el, m]) => el.textContent.trim() === m",
            arg=[page.locator(f"{DIALOG} .jp-condorhub-submit-error").element_handle(), refused.message],
            timeout=30_000,
        )
        page.click(f"{DIALOG} .jp-Dialog-footer .jp-mod-accept")
        time.sleep(1)
        assert page.locator(DIALOG).is_visible()  # still open, with what she typed
        assert dialog_error(page) == lab.api("POST", "scans", body).message
        assert page.input_value(f"{DIALOG} .jp-condorhub-submit-grid") == "lr: 0.1, 0.2\nlayers:"
        screenshot(page, "jobs-dialog-error")
        page.click(f"{DIALOG} .jp-Dialog-footer .jp-mod-reject")

        # A shell script without its x bit: the server says to chmod +x; the arguments stay typed.
        context_menu(page, "run.sh", "Submit as HTCondor job…")
        page.fill(f"{DIALOG} .jp-condorhub-submit-arguments", "--size 3")
        page.click(f"{DIALOG} .jp-Dialog-footer .jp-mod-accept")
        message = dialog_error(page)
        assert "chmod +x" in message, message
        assert page.locator(DIALOG).is_visible()
        assert page.input_value(f"{DIALOG} .jp-condorhub-submit-arguments") == "--size 3"
        # Fixed the way the message says, the same dialog submits it.
        (lab.dir / "run.sh").chmod(0o755)
        said = submit_dialog(page, lab)
        assert re.search(r"as job \d+\.\d+", said)
    after = {j["id"] for j in lab.api("GET", "jobs").json["jobs"]}
    assert len(after - before) == 1, after - before  # the refused requests submitted nothing


def test_an_unreachable_queue_is_said_in_the_panel_and_the_dialog_keeps_the_input(jobs_lab, ldap_home_base):
    home = Path(ldap_home_base) / "alice"
    nowhere = home / f".jobs-ui-nowhere-{secrets.token_hex(3)}.conf"  # a pool whose collector refuses
    nowhere.write_text(f"COLLECTOR_HOST = 127.0.0.1:{free_port()}\nSEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS\n")
    os.chown(nowhere, ALICE.uid_number, ALICE.gid_number)
    try:
        with alice_lab(jobs_lab, ldap_home_base, env={"CONDOR_CONFIG": str(nowhere)}, client=False) as lab, \
                chromium_page() as page:
            lab.write("train.py", "print('hi')\n")
            listing = lab.api("GET", "jobs").json
            assert listing["schedd"] == "unreachable" and listing["message"], listing
            open_lab(page, lab)
            show_panel(page)
            status = page.locator(f"{PANEL} .jp-condorhub-jobs-status")
            page.wait_for_function("([el, m]) => el.textContent.includes(m)",
                                   arg=[status.element_handle(), listing["message"]], timeout=60_000)
            assert "jp-condorhub-error" in status.get_attribute("class")
            # The dialog still offers her profiles; Submit gets the server's 503 sentence and keeps her input.
            context_menu(page, "train.py", "Submit as HTCondor job…")
            page.fill(f"{DIALOG} .jp-condorhub-submit-arguments", "--epochs 3")
            page.click(f"{DIALOG} .jp-Dialog-footer .jp-mod-accept")
            message = dialog_error(page)
            assert message.startswith("The HTCondor queue cannot be reached: ") and message.endswith("try again"), message
            assert page.input_value(f"{DIALOG} .jp-condorhub-submit-arguments") == "--epochs 3"
            screenshot(page, "jobs-unreachable")
    finally:
        nowhere.unlink(missing_ok=True)
