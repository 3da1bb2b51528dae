"""The TensorBoard manager on a real jupyter-server (pytest-jupyter): real TensorBoard subprocesses on
real event files, seen through the server's proxy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.samples.tensorboard import write_scalars
from tests.support.tensorboard_probe import tcp_listen_ports, unix_get


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for the user: it holds no port and no memory.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def logdir(jp_root_dir):
    write_scalars(jp_root_dir / "runs")
    return jp_root_dir / "runs"


@pytest.fixture
def tb_app(jp_serverapp):
    return next(iter(jp_serverapp.extension_manager.extension_apps["condorhub.lab"]))


@pytest.fixture
def started(api, logdir, tb_app, run):
    """Start a TensorBoard for runs/; stops whatever is left at the end."""
    yield lambda path="runs": api("POST", "condorhub/api/tensorboard", json_body={"logdir": path})
    run(tb_app.tensorboards.stop_all())


def test_start_see_its_ui_and_data_through_the_proxy_then_stop(api, started):
    r = started()
    assert r.code == 201, r
    inst = r.json
    assert inst["logdir"] == "runs" and inst["state"] in ("starting", "running")
    assert inst["url"] == f"condorhub/tensorboard/{inst['id']}/"
    # The first request waits for TensorBoard to come up instead of failing.
    page = api("GET", inst["url"].rstrip("/") + "/", timeout=130)
    assert page.code == 200, page
    assert "tb-relative-root" in page.text  # TensorBoard's own index page
    runs = api("GET", inst["url"] + "data/runs")
    assert runs.code == 200 and sorted(runs.json) == ["lr_0.01", "lr_0.1"]
    scalars = api("GET", inst["url"] + "data/plugin/scalars/scalars", params={"run": "lr_0.1", "tag": "loss"})
    assert scalars.code == 200 and len(scalars.json) == 50
    listed = api("GET", "condorhub/api/tensorboard").json["instances"]
    assert [(i["id"], i["state"]) for i in listed] == [(inst["id"], "running")]
    assert listed[0]["ready_after"] > 0
    pid = listed[0]["pid"]
    assert alive(pid)

    assert api("DELETE", f"condorhub/api/tensorboard/{inst['id']}").code == 204
    assert not alive(pid), "DELETE answered while TensorBoard still ran"
    assert api("GET", "condorhub/api/tensorboard").json["instances"] == []
    gone = api("GET", inst["url"])
    assert gone.code == 404 and "no TensorBoard" in gone.text
    assert api("DELETE", f"condorhub/api/tensorboard/{inst['id']}").code == 404


def test_the_tab_url_without_trailing_slash_redirects_to_it(api, started, jp_base_url):
    inst = started().json
    r = api("GET", f"condorhub/tensorboard/{inst['id']}", params={"x": "1"})
    assert r.code == 302
    assert r.raw.headers["Location"].endswith(f"condorhub/tensorboard/{inst['id']}/?x=1")


def test_several_instances_and_one_per_folder(api, started, jp_root_dir):
    write_scalars(jp_root_dir / "other", runs=("a",), steps=3)
    first = started()
    again = started("runs/")
    assert again.code == 200 and again.json["id"] == first.json["id"]  # the same folder: the same one
    second = started("other")
    assert second.code == 201 and second.json["id"] != first.json["id"]
    assert api("GET", second.json["url"] + "data/runs", timeout=130).json == ["a"]
    assert api("GET", first.json["url"] + "data/runs", timeout=130).code == 200
    assert len(api("GET", "condorhub/api/tensorboard").json["instances"]) == 2


def test_reload_restarts_the_process_under_the_same_url(api, started, logdir):
    inst = started().json
    assert api("GET", inst["url"] + "data/runs", timeout=130).code == 200
    old_pid = api("GET", f"condorhub/api/tensorboard/{inst['id']}").json["pid"]
    write_scalars(logdir, runs=("new_run",), steps=2)
    r = api("POST", f"condorhub/api/tensorboard/{inst['id']}/reload")
    assert r.code == 200 and r.json["id"] == inst["id"] and r.json["pid"] != old_pid
    assert wait_gone(old_pid, 2)
    assert "new_run" in api("GET", inst["url"] + "data/runs", timeout=130).json


def test_too_many_instances_is_a_clear_409(api, started, tb_app, jp_root_dir):
    tb_app.tensorboards.max_instances = 1
    (jp_root_dir / "other").mkdir()
    assert started().code == 201
    r = started("other")
    assert r.code == 409 and "stop one first" in r.message


@pytest.mark.parametrize(
    "body, code, words",
    [
        ({"logdir": "../"}, 400, "'..' is not allowed"),
        ({"logdir": "/etc"}, 400, "absolute paths are not accepted"),
        ({"logdir": "nope"}, 404, "no such file or folder"),
        ({"logdir": "runs/lr_0.1/notes.txt"}, 400, "is not a folder"),
        ({}, 400, "give the log folder"),
    ],
)
def test_bad_log_folders_are_refused(api, logdir, body, code, words):
    (logdir / "lr_0.1" / "notes.txt").write_text("x")
    r = api("POST", "condorhub/api/tensorboard", json_body=body)
    assert r.code == code, r
    assert words in r.message
    assert api("GET", "condorhub/api/tensorboard").json["instances"] == []


def test_a_symlinked_log_folder_out_of_the_root_is_refused(api, logdir, tmp_path):
    write_scalars(tmp_path / "elsewhere", runs=("x",), steps=1)
    os.symlink(tmp_path / "elsewhere", logdir / "link")
    r = api("POST", "condorhub/api/tensorboard", json_body={"logdir": "runs/link"})
    assert r.code == 403 and "outside the Lab's root" in r.message


def test_unknown_instances_are_404(api, logdir):
    assert api("GET", "condorhub/api/tensorboard/abcdef12").code == 404
    assert api("POST", "condorhub/api/tensorboard/abcdef12/reload").code == 404
    assert api("GET", "condorhub/tensorboard/abcdef12/").code == 404


def test_unauthenticated_requests_are_refused(api, started):
    inst = started().json
    assert api("GET", inst["url"], timeout=130).code == 200
    no_token = {"Authorization": ""}
    for method, path in [
        ("GET", "condorhub/api/tensorboard"),
        ("POST", "condorhub/api/tensorboard"),
        ("GET", f"condorhub/api/tensorboard/{inst['id']}"),
        ("DELETE", f"condorhub/api/tensorboard/{inst['id']}"),
        ("POST", f"condorhub/api/tensorboard/{inst['id']}/reload"),
        ("POST", inst["url"] + "data/plugin/scalars/scalars_multirun"),
    ]:
        r = api(method, path, json_body={"logdir": "runs"} if method == "POST" else None, headers=no_token)
        assert r.code == 403, (method, path, r)
    # The tab itself sends a browser to the login page, never TensorBoard's content.
    r = api("GET", inst["url"], headers=no_token)
    assert r.code == 302 and "login" in r.raw.headers["Location"] and "tb-relative-root" not in r.text
    assert api("GET", "condorhub/api/tensorboard").json["instances"][0]["state"] == "running"


def test_tensorboard_pages_accept_same_origin_requests_and_refuse_cross_site_ones(browser_session, started):
    """TensorBoard's own scripts cannot send Jupyter's XSRF token; the proxy trusts what the browser says
    about the request's origin instead (Sec-Fetch-Site, else Referer)."""
    inst = started().json
    url = inst["url"] + "data/plugin/scalars/scalars_multirun"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert browser_session("GET", inst["url"], xsrf=False, headers={"Sec-Fetch-Site": "same-origin"}).code == 200
    query = "tag=loss&runs=lr_0.1"
    ok = browser_session("POST", url, xsrf=False, headers={**form, "Sec-Fetch-Site": "same-origin"}, body=query)
    assert ok.code == 200 and len(ok.json["lr_0.1"]) == 50, ok
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Referer": "http://evil.example/page"}):
        r = browser_session("POST", url, xsrf=False, headers={**form, **headers}, body=query)
        assert r.code == 403, (headers, r)


def test_stopping_the_lab_server_stops_its_tensorboards(api, started, jp_serverapp, run):
    first, second = started().json, None
    (Path(jp_serverapp.root_dir) / "more").mkdir()
    second = started("more").json
    assert api("GET", first["url"], timeout=130).code == 200
    pids = [i["pid"] for i in api("GET", "condorhub/api/tensorboard").json["instances"]]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    run(jp_serverapp.cleanup_extensions())  # what the server's shutdown runs
    assert not any(alive(p) for p in pids)
    assert second["id"] != first["id"]


def test_a_killed_lab_server_leaves_no_tensorboard_behind(logdir, tmp_path):
    """SIGKILL runs no cleanup: the child wrapper's parent-death signal must end TensorBoard."""
    sockets = tmp_path / "s"
    sockets.mkdir(mode=0o700)
    sock = sockets / "instance-1.sock"
    server = subprocess.Popen(
        [sys.executable, "-c", (
            "import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-m', 'condorhub.lab.tensorboard.child', '--parent',"
            f" str(os.getpid()), '--socket', {str(sock)!r}, '--', '--logdir', {str(logdir)!r}])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(600)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    tb_pid = int(server.stdout.readline())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if unix_get(sock, "/data/runs")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("TensorBoard did not come up")
        server.send_signal(signal.SIGKILL)
        server.wait()
        assert wait_gone(tb_pid, 10), f"TensorBoard {tb_pid} outlived its killed server"
    finally:
        server.kill()
        try:
            os.kill(tb_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_notebook_tensorboard_magic_is_proxied_behind_the_server(api, logdir, jp_base_url, monkeypatch):
    """%tensorboard starts TensorBoard through tensorboard.manager (TENSORBOARD_BINARY, which the extension
    points at its launcher) and shows TENSORBOARD_PROXY_URL; that TensorBoard listens on no TCP port."""
    import tempfile

    from tensorboard import manager as tb_manager

    assert os.environ["TENSORBOARD_PROXY_URL"] == f"{jp_base_url}condorhub/tensorboard-port/%PORT%/"
    # A kernel's TMPDIR is the server's private one; this test process cached /tmp before the server started.
    monkeypatch.setattr(tempfile, "tempdir", os.environ["TMPDIR"])
    # What people type: the host and port are ignored (a TCP port would be open to every user).
    result = tb_manager.start(["--logdir", str(logdir), "--host", "0.0.0.0", "--port", "6006"], timeout=datetime_timeout())
    assert isinstance(result, tb_manager.StartLaunched), result
    info = result.info
    try:
        assert tcp_listen_ports(info.pid) == set(), "the %tensorboard TensorBoard listens on the machine's TCP"
        assert os.readlink(f"/proc/{info.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        url = os.environ["TENSORBOARD_PROXY_URL"].replace("%PORT%", str(info.port))
        assert url.startswith(jp_base_url)
        r = api("GET", url[len(jp_base_url):])
        assert r.code == 200 and "tb-relative-root" in r.text
        assert sorted(api("GET", url[len(jp_base_url):] + "data/runs").json) == ["lr_0.01", "lr_0.1"]
        # A number without a TensorBoard socket of this server is not proxied, whatever listens on it.
        other = api("GET", f"condorhub/tensorboard-port/{(info.port % 60000) + 1025}/")
        assert other.code == 404 and "no TensorBoard of yours" in other.text
        # The same magic again reuses it (tensorboard.manager's info file, in the private TMPDIR).
        again = tb_manager.start(["--logdir", str(logdir), "--host", "0.0.0.0", "--port", "6006"], timeout=datetime_timeout())
        assert isinstance(again, tb_manager.StartReused) and again.info.pid == info.pid
    finally:
        os.kill(info.pid, signal.SIGTERM)
        wait_gone(info.pid)


def datetime_timeout():
    import datetime

    return datetime.timedelta(seconds=120)


def test_tensorboard_does_not_load_tensorflow(api, started):
    """TensorFlow (installed for the course notebooks) would add seconds and hundreds of MB per instance."""
    inst = started().json
    assert api("GET", inst["url"], timeout=130).code == 200
    pid = api("GET", f"condorhub/api/tensorboard/{inst['id']}").json["pid"]
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "_pywrap_tensorflow" not in maps and "libtensorflow" not in maps


def test_tensorboard_listens_on_a_private_socket_not_on_tcp(api, started, tb_app):
    """Any TCP port on the machine's loopback (TensorBoard's or its data server's) would be readable by
    every user. TensorBoard answers on a Unix socket in a 0700 folder; its fast data server (rustboard)
    listens on TCP only inside the process's own network namespace."""
    import stat

    inst = started().json
    assert api("GET", inst["url"], timeout=130).code == 200
    pid = api("GET", f"condorhub/api/tensorboard/{inst['id']}").json["pid"]
    sock = tb_app.tensorboards.instances[inst["id"]].socket
    assert stat.S_ISSOCK(sock.lstat().st_mode) and stat.S_IMODE(sock.parent.lstat().st_mode) == 0o700
    assert unix_get(sock, "/data/runs")[0] == 200
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"), "not in a network of its own"
    rustboard = [c for c in children_of(pid) if Path(f"/proc/{c}/comm").read_text().strip() == "server"]
    assert len(rustboard) == 1, "the fast data server is not running"
    assert tcp_listen_ports(pid, netns_of=pid), "rustboard listens inside the private network"
    assert tcp_listen_ports(pid) == set(), "a port of this TensorBoard is reachable from the machine's network"


def test_without_a_private_network_the_fast_data_server_is_off(api, started, tb_app):
    """TensorFlow (remote log folders) needs the real network: then rustboard must not run at all."""
    tb_app.tensorboards.use_tensorflow = True
    inst = started().json
    assert api("GET", inst["url"] + "data/runs", timeout=130).code == 200
    pid = api("GET", f"condorhub/api/tensorboard/{inst['id']}").json["pid"]
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    assert not [c for c in children_of(pid) if Path(f"/proc/{c}/comm").read_text().strip() == "server"]
    assert tcp_listen_ports(pid) == set()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(")")[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_a_socket_that_is_not_the_users_is_not_connected_to(api, started, tb_app):
    """The proxy checks the socket's owner before every connection (a 0700 folder is the first guard)."""
    inst = started().json
    assert api("GET", inst["url"] + "data/runs", timeout=130).code == 200
    sock = tb_app.tensorboards.instances[inst["id"]].socket
    os.chown(sock, 65534, 65534)  # as if another user had put their socket there
    try:
        r = api("GET", inst["url"] + "data/runs")
        assert r.code == 502 and "not to you" in r.text, r
    finally:
        os.chown(sock, os.getuid(), os.getgid())
    assert api("GET", inst["url"] + "data/runs").code == 200


def test_a_tensorboard_that_cannot_start_reports_why(api, started, tb_app, monkeypatch):
    # A log folder TensorBoard takes for an unknown flag: it exits at once with its usage message.
    real_spawn = tb_app.tensorboards._spawn

    async def broken_spawn(inst):
        inst.real_logdir = "--no-such-flag"
        await real_spawn(inst)

    monkeypatch.setattr(tb_app.tensorboards, "_spawn", broken_spawn)
    inst = started().json
    r = api("GET", inst["url"], timeout=130)
    assert r.code == 502 and "failed" in r.text
    info = api("GET", f"condorhub/api/tensorboard/{inst['id']}").json
    assert info["state"] == "failed" and "exited with code" in info["message"] and "Its log ends" in info["message"]


def test_on_a_noexec_tmp_the_magic_launcher_goes_to_the_runtime_folder(tmp_path):
    """Some sites mount /tmp noexec: the launcher (TENSORBOARD_BINARY) must still run."""
    from condorhub.lab.tensorboard.private import PrivateDir

    import tempfile

    noexec = Path(tempfile.mkdtemp(prefix="nx-", dir="/tmp"))  # short: socket paths must fit under it
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=4m", "tmpfs", str(noexec)], check=True)
    try:
        private = PrivateDir.create(base=str(noexec))
        assert private.path.parent == noexec
        (private.path / "probe").write_text("#!/bin/sh\necho ran\n")
        (private.path / "probe").chmod(0o700)
        with pytest.raises(PermissionError):  # the control: nothing runs from there
            subprocess.run([str(private.path / "probe")])
        launcher = private.write_launcher(tmp_path / "runtime" / "condorhub")
        assert launcher.parent == tmp_path / "runtime" / "condorhub"
        env = {k: v for k, v in os.environ.items() if k != "CONDORHUB_LAB_PRIVATE_DIR"}
        ran = subprocess.run([str(launcher), "--logdir", "x"], env=env, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 1 and "CONDORHUB_LAB_PRIVATE_DIR is not set" in ran.stderr, ran
        private.remove()
        assert not launcher.exists() and not private.path.exists()
    finally:
        subprocess.run(["umount", str(noexec)], check=True)
        noexec.rmdir()


def test_a_killed_servers_private_folder_goes_at_the_next_start():
    """SIGKILL leaves the private folder behind; the next start removes folders of dead servers only."""
    import tempfile

    from condorhub.lab.tensorboard.private import PrivateDir

    base = Path(tempfile.mkdtemp(prefix="pd-", dir="/tmp"))
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        left = base / f"condorhub-lab-{dead.pid}-abcd1234"
        (left / "sockets").mkdir(parents=True)
        living = base / "condorhub-lab-1-abcd1234"  # pid 1 lives
        living.mkdir()
        private = PrivateDir.create(base=str(base))
        assert not left.exists() and living.exists() and private.path.exists()
        assert oct(private.path.stat().st_mode & 0o777) == "0o700"
    finally:
        shutil.rmtree(base)
