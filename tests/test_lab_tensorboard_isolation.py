"""Two real Unix users on one machine, as on a shared login or GPU node: the victim runs a real Jupyter
server with condorhub's extension (as their own uid), the attacker tries to read the victim's TensorBoard
and to slip their own web page into the victim's Lab through TensorBoard's info files.

The users are throw-away local accounts (uid >= 1000) made for this module and removed afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devstack.samples.tensorboard import write_scalars
from tests.support.ports import free_port
from tests.support.tensorboard_probe import tcp_get, tcp_listen_ports

PROBE = Path(__file__).parent / "support" / "tensorboard_probe.py"
INFO_DIR = Path("/tmp/.tensorboard-info")  # tensorboard.manager's default: tempfile.gettempdir()/.tensorboard-info


class User:
    def __init__(self, name: str):
        self.name = name
        entry = pwd.getpwnam(name)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)

    def env(self, **extra) -> dict:
        return {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "LANG": "C.UTF-8",
                "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **extra}  # fmt: skip

    def popen(self, cmd, env=None, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(cmd, user=self.uid, group=self.gid, extra_groups=[], env=env or self.env(),
                                cwd=self.home, start_new_session=True, **kwargs)  # fmt: skip

    def run(self, cmd, env=None, timeout=180) -> str:
        proc = self.popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{cmd} as {self.name} failed ({proc.returncode}): {err[-3000:]}"
        return out

    def processes(self) -> list[int]:
        return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _uid_of(p) == self.uid]


def _uid_of(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


def make_user(prefix: str) -> User:
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "-K", "UID_MIN=1000", "-K", "HOME_MODE=0700", name],
                   check=True)  # fmt: skip
    user = User(name)
    assert user.uid >= 1000
    return user


def remove_user(user: User) -> None:
    # Only what these throw-away accounts run, each by its pid.
    for _ in range(3):
        for pid in user.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    subprocess.run(["userdel", "--remove", user.name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def users():
    victim, attacker = make_user("tbvic"), make_user("tbatk")
    created_info_dir = not INFO_DIR.exists()
    yield victim, attacker
    for user in (victim, attacker):
        remove_user(user)
    for planted in INFO_DIR.glob("pid-*.info") if INFO_DIR.exists() else []:
        if planted.stat().st_uid == attacker.uid:
            planted.unlink()
    if created_info_dir:
        shutil.rmtree(INFO_DIR, ignore_errors=True)


class LabServer:
    """The victim's real Jupyter server (jupyter-server + condorhub.lab, enabled by the installed config)."""

    def __init__(self, user: User):
        self.user, self.port, self.token = user, free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = user.popen(
            [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={user.home}",
             "--ServerApp.open_browser=False", "--ServerApp.port_retries=0"],
            stdout=subprocess.DEVNULL, stderr=open(user.home / "server.log", "wb"),
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the victim's server exited: {self.log()}"
            try:
                if self.get("api/status").status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the victim's server did not come up: {self.log()}")

    def log(self) -> str:
        return (self.user.home / "server.log").read_text(errors="replace")[-4000:]

    def request(self, method, path, **kwargs):
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=kwargs.pop("timeout", 30),
                                allow_redirects=False, **kwargs)  # fmt: skip

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def kernel_environ(self) -> dict:
        """The environment of a real kernel of this server (the server sets os.environ at load, which
        /proc/<server>/environ does not show; its kernels get it)."""
        kernel = self.request("POST", "api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for proc in Path("/proc").iterdir():
                    if proc.name.isdigit() and _uid_of(proc) == self.user.uid:
                        try:
                            cmd = (proc / "cmdline").read_bytes()
                            if kernel.json()["id"].encode() in cmd:
                                raw = (proc / "environ").read_bytes()
                                return dict(i.split("=", 1) for i in raw.decode().split("\0") if "=" in i)
                        except OSError:
                            continue
                time.sleep(0.3)
            raise AssertionError("the kernel process did not show up")
        finally:
            self.request("DELETE", f"api/kernels/{kernel.json()['id']}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def lab(users):
    victim, _ = users
    write_scalars(victim.home / "runs")
    for root, dirs, files in os.walk(victim.home / "runs"):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, victim.uid, victim.gid)
    server = LabServer(victim)
    yield server
    server.stop()


def wait_ok(call, timeout=150):
    deadline = time.monotonic() + timeout
    while True:
        r = call()
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def probe_as(user: User, *args: str) -> dict:
    return json.loads(user.run([sys.executable, str(PROBE), *args]).strip().splitlines()[-1])


def test_another_user_cannot_read_the_victims_tensorboard(users, lab):
    victim, attacker = users
    started = lab.request("POST", "condorhub/api/tensorboard", json={"logdir": "runs"})
    assert started.status_code == 201, started.text
    inst = started.json()
    # The victim reads it through their own authenticated server.
    runs = wait_ok(lambda: lab.get(inst["url"] + "data/runs", timeout=130))
    assert runs.status_code == 200 and sorted(runs.json()) == ["lr_0.01", "lr_0.1"], runs.text
    pid = lab.get(f"condorhub/api/tensorboard/{inst['id']}").json()["pid"]
    assert tcp_listen_ports(pid) == set(), "the victim's TensorBoard (or its data server) listens on the machine's TCP"
    # Its fast data server listens on TCP inside the TensorBoard's own network only.
    inside = tcp_listen_ports(pid, netns_of=pid)
    assert len(inside) == 1, inside

    # Control: a TensorBoard on a loopback TCP port, the way every TensorBoard ran before (and the way
    # `tensorboard` typed in a terminal still does), is readable by the attacker: the probe works.
    control_port = free_port()
    control = victim.popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(victim.home / "runs"),
                            "--host", "127.0.0.1", "--port", str(control_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert wait_ok(lambda: _tcp_or_none(control_port)).status_code == 200
        seen = probe_as(attacker, "tcp-of-uid", str(victim.uid), "/data/runs")
        readable = {port for port, answer in seen.items() if answer[0] == 200 and "lr_0.1" in answer[1]}
        assert readable == {str(control_port)}, seen  # the control, and nothing of the Lab's TensorBoard
    finally:
        control.kill()
        control.wait()

    # That port number on the machine's loopback is nothing of the victim's.
    (rustboard_port,) = inside
    answer = probe_as(attacker, "tcp", str(rustboard_port), "/")[str(rustboard_port)]
    assert answer[0] == "error" and "ConnectionRefused" in answer[1], answer

    # The socket itself: in the victim's 0700 private folder, so the attacker cannot even reach it.
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    sock = cmdline[cmdline.index(b"--socket") + 1].decode()
    assert os.path.exists(sock) and Path(sock).stat().st_uid == victim.uid
    assert stat.S_IMODE(os.stat(Path(sock).parent.parent).st_mode) == 0o700
    answer = probe_as(attacker, "unix", sock, "/data/runs")[sock]
    assert answer[0] == "error" and "PermissionError" in answer[1], answer
    # And the victim's server does not let the attacker in without the victim's token.
    assert requests.get(lab.url + inst["url"] + "data/runs", timeout=30, allow_redirects=False).status_code in (302, 403)


class _Answer:
    def __init__(self, status_code):
        self.status_code = status_code


def _tcp_or_none(port):
    try:
        return _Answer(tcp_get(port, "/data/runs")[0])
    except OSError:
        return _Answer(0)


ATTACKER_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><title>attacker</title><script>/* runs as the victim if same-origin */</script>ATTACKER PAGE</html>"
        self.send_response(200); self.send_header("Content-Type", "text/html"); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

PLANT = """
import json, os, sys, time
from tensorboard import manager, version
victim_pid, port, cwd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
info_dir = "/tmp/.tensorboard-info"
os.makedirs(info_dir, exist_ok=True)
key = manager.cache_key(working_directory=cwd, arguments=["--logdir", "runs"], configure_kwargs={})
info = manager.TensorBoardInfo(version=version.VERSION, start_time=int(time.time()), pid=victim_pid, port=port,
                               path_prefix="", logdir=cwd + "/runs", db="", cache_key=key)
with open(f"{info_dir}/pid-{victim_pid}.info", "w") as f:
    f.write(manager._info_to_string(info) + "\\n")
print(f"{info_dir}/pid-{victim_pid}.info")
"""

MAGIC = """
import datetime, json, os, tempfile
from tensorboard import manager
r = manager.start(["--logdir", "runs"], timeout=datetime.timedelta(seconds=150))
info = getattr(r, "info", None)
print(json.dumps({"result": type(r).__name__, "port": info and info.port, "pid": info and info.pid,
                  "tmp": tempfile.gettempdir()}))
"""


def test_an_info_file_planted_by_another_user_is_ignored(users, lab):
    victim, attacker = users
    attacker_port = free_port()
    page = attacker.popen([sys.executable, "-c", ATTACKER_SERVER, str(attacker_port)])
    try:
        assert wait_ok(lambda: _tcp_or_none(attacker_port), timeout=30).status_code == 200
        # The attacker plants an entry naming the victim's server pid (alive, the victim's) and the cache
        # key of `%tensorboard --logdir runs` in the victim's home: both are guessable.
        planted = attacker.run([sys.executable, "-c", PLANT, str(lab.proc.pid), str(attacker_port), str(victim.home)]).strip()
        assert Path(planted).stat().st_uid == attacker.uid

        # 1. The Lab's %tensorboard route does not take the planted port for one of the victim's.
        r = lab.get(f"condorhub/tensorboard-port/{attacker_port}/")
        assert r.status_code == 404 and "ATTACKER" not in r.text, r.text

        # 2. %tensorboard in a kernel of the victim's server (its environment: the private TMPDIR and
        # condorhub's TENSORBOARD_BINARY) starts its own TensorBoard instead of "reusing" the planted one.
        env = lab.kernel_environ()
        tmp = Path(env["TMPDIR"])
        assert tmp.stat().st_uid == victim.uid and stat.S_IMODE(tmp.parent.stat().st_mode) == 0o700
        magic = json.loads(victim.run([sys.executable, "-c", MAGIC], env=env).strip().splitlines()[-1])
        try:
            assert magic["result"] == "StartLaunched" and magic["port"] != attacker_port, magic
            assert magic["tmp"] == str(tmp)
            shown = wait_ok(lambda: lab.get(f"condorhub/tensorboard-port/{magic['port']}/data/runs", timeout=130))
            assert shown.status_code == 200 and sorted(shown.json()) == ["lr_0.01", "lr_0.1"], shown.text
            assert tcp_listen_ports(magic["pid"]) == set()
        finally:
            os.kill(magic["pid"], signal.SIGTERM)

        # Control: without the private TMPDIR (what every kernel had before), the same magic call takes
        # the attacker's entry: the plant is a real attack.
        exposed = {k: v for k, v in env.items() if k != "TMPDIR"}
        before = json.loads(victim.run([sys.executable, "-c", MAGIC], env=exposed).strip().splitlines()[-1])
        assert before["result"] == "StartReused" and before["port"] == attacker_port, before
    finally:
        page.kill()
        page.wait()


def test_the_private_folder_goes_with_the_server(users, lab):
    """Stopped, the server removes its private folder (sockets, TMPDIR, launcher) and its TensorBoards."""
    private = Path(lab.kernel_environ()["CONDORHUB_LAB_PRIVATE_DIR"])
    assert private.is_dir() and private.stat().st_uid == users[0].uid
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    pids = [i["pid"] for i in lab.get("condorhub/api/tensorboard").json()["instances"]]
    lab.stop()
    assert not private.exists()
    assert not any(Path(f"/proc/{p}").exists() and _uid_of(Path(f"/proc/{p}")) == users[0].uid for p in pids)
