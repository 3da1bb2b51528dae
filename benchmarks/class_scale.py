"""A class of N students at once: log in, start a server, open the Lab, run a cell — against condorhub, and the
spawn part against stock JupyterHub + batchspawner's CondorSpawner, in the same run on the same pool.

    /opt/condorhub/venv/bin/python benchmarks/class_scale.py [--users 10] [--profile-hub /tmp/hub.txt]

As root. Everything is set up for real, like the tests (benchmarks/condor_spawn.py's set-up, which this reuses):
a throw-away OpenLDAP with N students (bench01...), the HTCondor 23.9 pool of devstack.pool on a free port
(simulated GPUs: one per GPU student, a CPU per HTCondor student, plus two), and a condorhub hub behind
configurable-http-proxy. The client is outside the hub's code: plain HTTP (requests) and the kernel's websocket
(websocket-client), as a browser does. Every student, in a thread of their own:

1. logs in through the login form; the N logins are spread evenly over --login-window seconds (default 10);
2. requests a server (REST API, as the spawn form's button does) with a profile by turn: the login node, a CPU
   HTCondor job, a 1-GPU HTCondor job; reads the spawn page's event stream until "ready";
3. opens the Lab (GET /user/<name>/lab: the OAuth redirects that give the browser the server's cookie);
4. starts a kernel (POST /api/kernels), connects its websocket through the proxy and runs one cell.

Reported per profile and for all: errors, p50/p95/max of login, request → ready, the job's queue wait
(QDate → JobCurrentStartDate; 0 on the login node), request → ready − queue wait, Lab open, first cell (kernel
POST → the cell's execute_reply: what the student waits for) and the cell alone (execute_request → reply); CPU
seconds and peak RSS of the hub (with its bindings workers) and of the proxy; the hub's longest event-loop stall:
a probe thread GETs /hub/health on the hub's own port (not through the proxy) every 100 ms; a probe's answer
time is how long the loop could not serve it. The load average of the machine is sampled beside every phase.

Then the stock hub: the same HTCondor students log in the same way and start their servers as CPU jobs (stock
has no GPU profile), all at once; request → ready and queue wait.

--profile-hub FILE records the condorhub hub with py-spy (collapsed stacks, --py-spy names the binary) during
the class, and prints the functions holding the event loop thread longest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests
import websocket

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from condor_spawn import Bench, percentile, tree_cpu  # noqa: E402  (puts the checkout on sys.path)

from tests.support.hub import Hub, HubClient  # noqa: E402

#: Profiles by turn: student i gets PROFILES[i % 3].
PROFILES = ("login-node", "cpu", "gpu-1")


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                found[int(entry.name)] = (int(fields[1]), int(fields[3]))
            except (OSError, IndexError, ValueError):
                continue
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Sampler(threading.Thread):
    """Every second: RSS of the hub (its process and its bindings workers) and of the proxy; load average.
    And every 100 ms a GET of /hub/health on the hub's own port: the longest answer is the longest stall."""

    def __init__(self, hub: Hub):
        super().__init__(daemon=True)
        self.hub = hub
        self.health_url = hub.site["hub"]["hub_bind_url"].rstrip("/") + "/hub/health"
        self.stop_event = threading.Event()
        self.peak_rss = {"hub": 0, "proxy": 0}
        self.loads: list[float] = []
        self.probes: list[tuple[float, float]] = []  # (start, answer time)
        self.probe_errors = 0
        self.prober = threading.Thread(target=self._probe, daemon=True)

    def parts(self) -> dict[str, list[int]]:
        """The hub with its helpers (bindings workers, services: the hub's session, tests/support/hub.py starts it
        in one of its own) and the proxy (a child in a session of its own, as JupyterHub starts it); not the
        users' servers and kernels (each in its own session)."""
        hub_pid = self.hub.proc.pid
        table = processes()
        parts: dict[str, list[int]] = {"hub": [pid for pid, (_, sid) in table.items() if sid == hub_pid], "proxy": []}
        parts["proxy"] = [
            pid for pid, (ppid, _) in table.items() if ppid == hub_pid and "configurable-http-proxy" in cmdline(pid)
        ]
        return parts

    def cpu(self) -> dict[str, float]:
        return {name: sum(proc_stat(pid)[0] for pid in pids) for name, pids in self.parts().items()}

    def run(self) -> None:
        self.prober.start()
        while not self.stop_event.wait(1.0):
            for name, pids in self.parts().items():
                self.peak_rss[name] = max(self.peak_rss[name], sum(proc_stat(pid)[1] for pid in pids))
            self.loads.append(os.getloadavg()[0])

    def _probe(self) -> None:
        session = requests.Session()
        while not self.stop_event.is_set():
            start = time.monotonic()
            try:
                session.get(self.health_url, timeout=60).raise_for_status()
                self.probes.append((time.time(), time.monotonic() - start))
            except requests.RequestException:
                self.probe_errors += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - start)))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)
        self.prober.join(70)


class Student:
    """One student's browser: a session with cookies, the measurements of their run."""

    def __init__(self, hub: Hub, uid: str, password: str, profile: str):
        self.client = HubClient(hub.url)
        self.hub = hub
        self.uid, self.password, self.profile = uid, password, profile
        self.t: dict[str, float] = {}
        self.error: str | None = None
        self.step = "start"

    def run(self, at: float, lab: bool, body: dict | None) -> None:
        try:
            time.sleep(max(0.0, at - time.time()))
            self.login()
            self.spawn(body if body is not None else {"profile": self.profile})
            if lab:
                self.open_lab()
                self.first_cell()
        except Exception as exc:  # one student's failure is a measurement, not the end of the run
            self.error = f"{self.step}: {type(exc).__name__}: {str(exc)[:300]}"

    def login(self) -> None:
        self.step = "login"
        start = time.time()
        r = self.client.login(self.uid, self.password, timeout=120, follow=False)
        if r.status_code != 302:
            raise RuntimeError(f"login answered {r.status_code}")
        self.t["login"] = time.time() - start

    def spawn(self, body: dict) -> None:
        self.step = "spawn"
        self.t["request"] = time.time()
        r = self.client.api("POST", f"/users/{self.uid}/server", json=body, timeout=120)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn request answered {r.status_code} {r.text[:200]}")
        url = f"{self.client.url}/hub/api/users/{self.uid}/server/progress"
        with self.client.http.get(url, stream=True, timeout=900) as stream:
            for line in stream.iter_lines(chunk_size=None, decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("failed"):
                        raise RuntimeError(f"spawn failed: {event.get('message')}")
                    if event.get("ready"):
                        self.t["ready"] = time.time()
                        return
        raise RuntimeError("the event stream ended without ready")

    def open_lab(self) -> None:
        self.step = "lab"
        start = time.time()
        r = self.client.http.get(f"{self.client.url}/user/{self.uid}/lab", timeout=120)
        if r.status_code != 200 or not r.url.startswith(f"{self.client.url}/user/{self.uid}/"):
            raise RuntimeError(f"the Lab answered {r.status_code} at {r.url}")
        self.t["lab"] = time.time() - start

    def first_cell(self) -> None:
        self.step = "kernel"
        base = f"{self.client.url}/user/{self.uid}"
        cookies = {c.name: c.value for c in self.client.http.cookies if (c.path or "/").startswith(f"/user/{self.uid}")}
        xsrf = cookies.get("_xsrf", "")
        start = time.time()
        r = self.client.http.post(f"{base}/api/kernels", json={"name": "python3"}, headers={"X-XSRFToken": xsrf}, timeout=120)
        if r.status_code != 201:
            raise RuntimeError(f"kernel start answered {r.status_code} {r.text[:200]}")
        kernel = r.json()["id"]
        self.step = "cell"
        session = uuid.uuid4().hex
        ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels?session_id={session}"
        if xsrf:
            ws_url += f"&_xsrf={xsrf}"
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.client.http.cookies)
        ws = websocket.create_connection(ws_url, cookie=cookie, timeout=120)
        try:
            msg_id = uuid.uuid4().hex
            sent = time.time()
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.uid, "session": session,
                           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": "import os\nos.getpid() * 2", "silent": False, "store_history": True,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
            }))
            # The reply (shell channel) and the result (iopub) come in either order on the one websocket:
            # the cell is done when both are in, as the Lab shows it.
            result, replied = None, False
            while result is None or not replied:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "execute_result":
                    result = msg["content"]["data"]["text/plain"]
                if msg["msg_type"] == "execute_reply":
                    if msg["content"]["status"] != "ok":
                        raise RuntimeError(f"the cell failed: {msg['content']}")
                    replied = True
            if not result or not result.isdigit():
                raise RuntimeError(f"the cell gave no number: {result!r}")
            now = time.time()
            self.t["first_cell"] = now - start
            self.t["cell"] = now - sent
        finally:
            ws.close()
        self.client.http.delete(f"{base}/api/kernels/{kernel}", headers={"X-XSRFToken": xsrf}, timeout=60)


class ClassBench(Bench):
    """condor_spawn's set-up, sized for the class: a CPU per HTCondor student, a GPU per GPU student."""

    def __init__(self, args):
        args.servers = args.users
        super().__init__(args)
        self.profiles = [PROFILES[i % len(PROFILES)] for i in range(self.n)]

    def num_gpus(self) -> int:
        return max(1, self.profiles.count("gpu-1"))

    def num_cpus(self) -> int:
        return sum(p != "login-node" for p in self.profiles) + 2

    def condor_profiles(self) -> list[dict]:
        common = {"kind": "condor", "roles": ["student"], "cpus": 1, "memory": "300M", "runtime": "1h"}
        return [
            {"slug": "cpu", "display_name": "CPU batch", **common},
            {"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1, **common},
        ]

    def site(self, name: str, condor: bool) -> dict:
        site = super().site(name, condor)
        for profile in site["profiles"]:
            if profile["kind"] == "login_node":
                profile["memory"] = "1G"
        return site

    def class_run(self, name: str) -> dict:
        condor = name == "condorhub"
        work = self.work / name
        work.mkdir()
        extra = ["--JupyterHub.authenticate_prometheus=False", *self.args.hub_arg]
        if not condor:
            from stock_condor import stock_args

            from devstack import node_root as wr

            self.seed_user_map()

            token_dir = self.pool.run_dir / "tmp" / f"stock-token-{os.urandom(4).hex()}"
            token_dir.mkdir(mode=0o700)
            shutil.copy(self.pool.token_path, token_dir / "hub.token")
            (token_dir / "hub.token").chmod(0o600)
            count_file = work / "commands.txt"
            count_file.touch()
            extra = ["--JupyterHub.authenticate_prometheus=False"] + stock_args(
                str(self.pool.root), f"/tmp/{token_dir.name}", str(count_file), wr.WORKER_VENV, self.args.poll_interval
            )
            os.environ["PYTHONPATH"] = str(HERE)
        hub = Hub(work, self.site(name, condor), extra_args=extra)
        hub.start(timeout=120)
        os.environ.pop("PYTHONPATH", None)
        users = [(u, p) for u, p in zip(self.users, self.profiles) if condor or p != "login-node"]
        students = [Student(hub, u.uid, u.password, p) for u, p in users]
        sampler = Sampler(hub)
        spy = None
        try:
            sampler.start()
            time.sleep(2)
            cpu_before = sampler.cpu()
            if condor and self.args.profile_hub:
                spy = subprocess.Popen(
                    [self.args.py_spy, "record", "--pid", str(hub.proc.pid), "--rate", "50", "--format", "raw",
                     "--output", self.args.profile_hub, "--nonblocking", "--threads"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            start = time.time() + 1
            spacing = self.args.login_window / max(1, len(students))
            threads = [
                threading.Thread(target=s.run, args=(start + i * spacing, condor, None if condor else {}), daemon=True)
                for i, s in enumerate(students)
            ]
            load_start = os.getloadavg()[0]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(1200)
            elapsed = time.time() - start
            cpu_after = sampler.cpu()
            if spy is not None:
                spy.send_signal(2)
                spy.wait(60)
            self._queue_waits(students)
            sampler.stop()
            stalls = sorted(sampler.probes, key=lambda p: -p[1])
            return {
                "students": [{"uid": s.uid, "profile": s.profile, "error": s.error, **s.t} for s in students],
                "elapsed": elapsed,
                "cpu": {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after},
                "peak_rss": dict(sampler.peak_rss),
                "load": {"start": load_start, "max": max(sampler.loads, default=0.0),
                         "mean": statistics.mean(sampler.loads) if sampler.loads else 0.0},
                "stall_max": stalls[0][1] if stalls else None,
                "stall_top": stalls[:5],
                "probes": len(sampler.probes),
                "probe_errors": sampler.probe_errors,
                "hub_log": str(hub.log_file),
            }
        finally:
            sampler.stop_event.set()
            if spy is not None and spy.poll() is None:
                spy.kill()
            self._stop_all(hub)
            hub.stop()

    def _queue_waits(self, students: list[Student]) -> None:
        import htcondor2

        ads = htcondor2.Schedd().query("JobStatus == 2", projection=["Owner", "QDate", "JobCurrentStartDate"])
        by_user = {ad["Owner"]: ad for ad in ads}
        for s in students:
            if s.profile == "login-node":
                s.t["queue_wait"] = 0.0
            elif s.uid in by_user:
                s.t["queue_wait"] = float(by_user[s.uid]["JobCurrentStartDate"] - by_user[s.uid]["QDate"])


def dist(values: list[float]) -> str:
    if not values:
        return "– | – | –"
    return f"{statistics.median(values):.2f} s | {percentile(values, 95):.2f} s | {max(values):.2f} s"


def report(name: str, result: dict) -> list[str]:
    rows = []
    students = result["students"]
    groups = [("all", students)]
    if name == "condorhub":  # stock starts every server as a CPU job: one group
        groups += [(p, [s for s in students if s["profile"] == p]) for p in PROFILES]
    for label, group in groups:
        if not group:
            continue
        ok = [s for s in group if not s["error"]]
        spawned = [s for s in ok if "ready" in s]
        metrics = [
            ("login", [s["login"] for s in group if "login" in s]),
            ("request → ready", [s["ready"] - s["request"] for s in spawned]),
            ("queue wait", [s["queue_wait"] for s in spawned if "queue_wait" in s]),
            ("request → ready − queue wait", [s["ready"] - s["request"] - s["queue_wait"] for s in spawned if "queue_wait" in s]),
        ]
        if name == "condorhub":
            metrics += [
                ("Lab open", [s["lab"] for s in ok if "lab" in s]),
                ("first cell (kernel start → result)", [s["first_cell"] for s in ok if "first_cell" in s]),
                ("cell alone (execute → reply)", [s["cell"] for s in ok if "cell" in s]),
            ]
        errors = len(group) - len(ok)
        for what, values in metrics:
            rows.append(f"| {name} | {label} ({len(group)}, {errors} errors) | {what} | {dist(values)} |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10, help="students (default 10)")
    parser.add_argument("--login-window", type=float, default=10.0, help="seconds the logins are spread over (10)")
    parser.add_argument("--poll-interval", type=int, default=5, help="seconds between polls, both spawners (5)")
    parser.add_argument("--only", choices=["condorhub", "stock"], help="run one hub only")
    parser.add_argument("--hub-arg", action="append", default=[], help="a JupyterHub setting for condorhub's hub, "
                        "e.g. --hub-arg=--JupyterHub.concurrent_spawn_limit=200 (repeatable)")
    parser.add_argument("--profile-hub", help="record condorhub's hub with py-spy into this file (collapsed stacks)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="the py-spy binary")
    parser.add_argument("--json", help="write the raw measurements here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs) for inspection")
    args = parser.parse_args(argv)
    args.window = 0
    args.sequential = 0
    if os.geteuid() != 0:
        parser.error("run as root (the pool needs chroot and mounts)")
    bench = ClassBench(args)
    results = {}
    try:
        print(f"# pool: {bench.num_cpus()} CPUs, {bench.num_gpus()} GPUs ...", file=sys.stderr, flush=True)
        bench.up()
        for name in ("condorhub", "stock"):
            if args.only in (None, name):
                print(f"# {name}: {args.users} students ...", file=sys.stderr, flush=True)
                results[name] = bench.class_run(name)
                if args.keep:
                    print(f"# {name} hub log: {results[name]['hub_log']}", file=sys.stderr)
    finally:
        bench.down()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    uname = platform.uname()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {uname.system} "
          f"{uname.release}, Python {platform.python_version()}; {args.users} students, logins over "
          f"{args.login_window:.0f} s, poll interval {args.poll_interval} s\n")
    print("| hub | students | what | p50 | p95 | max |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        print("\n".join(report(name, result)))
    print()
    for name, result in results.items():
        errors = Counter((s["error"] or "").split(":")[0] for s in result["students"] if s["error"])
        stall = result["stall_max"]
        print(
            f"- {name}: whole class {result['elapsed']:.0f} s; CPU hub {result['cpu']['hub']:.1f} s, proxy "
            f"{result['cpu']['proxy']:.1f} s; peak RSS hub {result['peak_rss']['hub'] / 2**20:.0f} MiB, proxy "
            f"{result['peak_rss']['proxy'] / 2**20:.0f} MiB; longest /hub/health answer "
            f"{'–' if stall is None else f'{stall:.2f} s'} ({result['probes']} probes, {result['probe_errors']} "
            f"failed); load average at start {result['load']['start']:.1f}, mean {result['load']['mean']:.1f}, "
            f"max {result['load']['max']:.1f}; errors by step: {dict(errors) or 'none'}"
        )
        for s in result["students"]:
            if s["error"]:
                print(f"  - {s['uid']} ({s['profile']}): {s['error']}")
    if args.profile_hub and Path(args.profile_hub).exists():
        print("\n" + hot_spots(Path(args.profile_hub)))
    return 0


def hot_spots(path: Path, top: int = 15) -> str:
    """The functions on the hub's main thread with the most samples (self and total), from py-spy's raw output."""
    own, total, samples = Counter(), Counter(), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        # --threads puts the thread first ("thread (0x...)"), before the frames
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process "))]
        n = int(count)
        samples += n
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"py-spy: {samples} samples of the hub's busy threads (50/s, idle not sampled)", "", "| total | self | function |", "|---:|---:|---|"]
    for frame, n in total.most_common(top):
        lines.append(f"| {n} | {own[frame]} | {frame} |")
    lines += ["", "| self | function |", "|---:|---|"]
    for frame, n in own.most_common(top):
        lines.append(f"| {n} | {frame} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
