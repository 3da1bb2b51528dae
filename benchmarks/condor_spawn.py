"""Spawning N Jupyter servers as HTCondor jobs: condorhub's HTCondorSpawner against stock batchspawner's
CondorSpawner, in the same run, on the same real pool.

    /opt/condorhub/venv/bin/python benchmarks/condor_spawn.py [--servers 20] [--poll-interval 5] [--window 30]

Sets up everything itself, like the tests: a throw-away OpenLDAP with N students (bench01...), the real
HTCondor pool of devstack.pool (its Debian root, nslcd, homes bind-mounted; N+2 CPU slots), and
for each spawner a real hub behind configurable-http-proxy. N clients log in, then all request a server
at the same moment (REST API) and read the spawn page's event stream until "ready". Once all run, the
hub is left alone for --window seconds. Reported per spawner:

* **schedd queries per poll cycle** while the N servers run: condorhub counts its own queries
  (/hub/metrics, condorhub_schedd_queries_total); stock's condor_q processes are counted by a wrapper.
  Goal: 1 for condorhub (stock: N).
* **hub CPU per poll cycle** in that window: CPU seconds of the hub and its helper processes (condor_q
  for stock, the bindings' worker processes for condorhub; not the proxy), divided by the cycles.
* **spawn overhead**, per server:
  - *total*: request → "ready" event at the client;
  - *queue wait*: the job's QDate → JobCurrentStartDate (HTCondor's timestamps, whole seconds);
  - *total − queue wait*: the issue's definition; it includes the Jupyter server's own start-up on the
    node (importing jupyter-server and JupyterLab on a busy 2-core machine);
  - *hub-side*: the time only the hub accounts for: request → job submitted (hub log) plus server
    listening (its own log line "Jupyter Server ... is running at", on the node) → "ready" at the
    client. Millisecond timestamps from the same clock. Goal: p95 < 1 s.

Prints a Markdown table (for docs/benchmarks.md) with the machine and date; --json writes the raw data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
#: The checkout this script lives in: devstack/, the tests' hub harness (tests/support/hub.py), and the wheel and
#: roles the pool's node is deployed from (not $CONDORHUB_SOURCE, which may name another checkout).
CHECKOUT = HERE.parent
sys.path.insert(0, str(CHECKOUT))
sys.path.insert(0, str(HERE))

from stock_condor import stock_args  # noqa: E402

from devstack import node_root as wr  # noqa: E402
from devstack.directory import DEMO_GID_NUMBER, DemoUser, directory_ldif, ssha_password  # noqa: E402
from devstack.pool import HTCondorPool  # noqa: E402
from devstack.slapd import OpenLDAPServer  # noqa: E402
from tests.support.hub import Hub, HubClient, demo_site  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

#: The benchmark's students are in the "students" LDAP group: role student, charged to this group.
ACCOUNTING_GROUPS = {"student": "group_students"}

LOG_TIME = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})")


def log_time(line: str) -> float | None:
    match = LOG_TIME.match(line)
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp() if match else None


def _time_of(lines: list[str], marker: str) -> float:
    """Timestamp of the log record containing ``marker`` (a record may continue over several lines)."""
    last = None
    for line in lines:
        last = log_time(line) or last
        if marker in line:
            return last
    raise LookupError(f"no log line with {marker!r}")


def scratch(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path


def bench_users(n: int) -> list[DemoUser]:
    return [
        DemoUser(f"bench{i:02d}", f"bench{i:02d}-pw", 20000 + i, DEMO_GID_NUMBER, "", "students", f"Bench {i}")
        for i in range(1, n + 1)
    ]


def tree_cpu(pid: int, exclude: str = "configurable-http-proxy") -> float:
    """CPU seconds of ``pid`` (with its reaped children) and its live descendants, except ``exclude``."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if exclude in cmd:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields is None:
            continue
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += (utime + stime + cutime + cstime) / ticks
        todo.extend(children.get(current, []))
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Bench:
    def __init__(self, args):
        self.args = args
        self.n = args.servers
        self.users = bench_users(self.n)
        self.work = scratch("condorhub-bench-")
        self.homes = self.work / "home"
        self.homes.mkdir(mode=0o755)
        self.slapd = None
        self.pool = None

    # -- set-up ----------------------------------------------------------------------------------------

    def up(self) -> None:
        self.slapd = OpenLDAPServer(self.work / "ldap").start()
        self.slapd.add_ldif(directory_ldif(self.slapd.suffix, self.users, home_base=str(self.homes)))
        nslcd_dn, nslcd_pw = f"cn=nslcd,{self.slapd.suffix}", secrets.token_urlsafe(16)
        self.slapd.add_ldif(
            f"dn: {nslcd_dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: nslcd\n"
            f"userPassword: {ssha_password(nslcd_pw)}\n"
        )
        for user in self.users:
            home = Path(user.home_under(str(self.homes)))
            home.mkdir(mode=0o755)
            os.chown(home, user.uid_number, user.gid_number)
        self.pool = HTCondorPool(
            self.work / "pool",
            ldap_uri=self.slapd.uri,
            ldap_base=self.slapd.suffix,
            home_base=self.homes,
            num_gpus=self.num_gpus(),
            num_cpus=self.num_cpus(),
            # A free port, not the default 9618: the benchmark runs beside the demo's pool (and the tests').
            port=free_port(),
            group_quotas={group: 1.0 for group in ACCOUNTING_GROUPS.values()},
            repo=CHECKOUT,
            probe_user=self.users[0].uid,
            ldap_bind_dn=nslcd_dn,
            ldap_bind_password=nslcd_pw,
            log=lambda msg: None,
        ).up()
        os.environ.update(self.pool.env)
        import htcondor2

        htcondor2.reload_config()

    def num_gpus(self) -> int:
        return 2

    def num_cpus(self) -> int:
        return self.n + 2

    def condor_profiles(self) -> list[dict]:
        return [
            {
                "slug": "cpu",
                "kind": "condor",
                "display_name": "CPU batch",
                "roles": ["student"],
                "cpus": 1,
                "memory": "512M",
                "runtime": "1h",
            }
        ]

    def seed_user_map(self) -> None:
        """The students' lines in the pool's user map, as condorhub's hub writes them at each login: the pool
        refuses jobs of users its map lacks, and stock batchspawner does not write it. (condorhub's hub writes
        them itself: its run starts with an empty map, as the first lesson of a class does.)"""
        from condorhub.schema import DEFAULT_MAX_JOBS_PER_USER, CondorProfile
        from condorhub.spawner.condor.usermap import UserMapWriter, limits_for

        profiles = [CondorProfile(**p) for p in self.condor_profiles()]
        writer = UserMapWriter(self.pool.user_map_path, self.pool.user_map_reconfig_command)
        limits = limits_for(["student"], profiles, dict(ACCOUNTING_GROUPS), {}, DEFAULT_MAX_JOBS_PER_USER)
        for user in self.users:
            writer.update(user.uid, limits)

    def down(self) -> None:
        try:
            if self.pool is not None:
                self.pool.down()
        finally:
            if self.slapd is not None:
                self.slapd.stop()
            if self.args.keep:
                print(f"# kept {self.work} (hub logs, homes with the jobs' output)", file=sys.stderr)
            else:
                shutil.rmtree(self.work, ignore_errors=True)

    def site(self, name: str, condor: bool) -> dict:
        site = demo_site(self.slapd.uri, self.slapd.suffix, self.work / name / "state")
        if condor:
            site["htcondor"] = {
                "condor_config": str(self.pool.condor_config_path),
                "server_venv": wr.WORKER_VENV,
                "poll_interval": self.args.poll_interval,
                "server_start_timeout": "5m",
                "queue_timeout": "10m",
                "accounting_groups": dict(ACCOUNTING_GROUPS),
                "user_map": self.pool.hub_user_map_settings,
            }
            site["profiles"] += self.condor_profiles()
        return site

    # -- one spawner -----------------------------------------------------------------------------------

    def run(self, name: str) -> dict:
        condor = name == "condorhub"
        work = self.work / name
        work.mkdir()
        count_file = work / "commands.txt"
        count_file.touch()
        extra = ["--JupyterHub.authenticate_prometheus=False"]
        if not condor:
            self.seed_user_map()
            # The hub's token, where the pool's tools (inside its root) can read it: root-only folder.
            token_dir = self.pool.run_dir / "tmp" / f"stock-token-{secrets.token_hex(4)}"
            token_dir.mkdir(mode=0o700)
            shutil.copy(self.pool.token_path, token_dir / "hub.token")
            (token_dir / "hub.token").chmod(0o600)
            extra += stock_args(
                str(self.pool.root), f"/tmp/{token_dir.name}", str(count_file), wr.WORKER_VENV, self.args.poll_interval
            )
            os.environ["PYTHONPATH"] = str(HERE)
        hub = Hub(work, self.site(name, condor), extra_args=extra)
        hub.start(timeout=90)
        os.environ.pop("PYTHONPATH", None)
        try:
            clients = {}
            for user in self.users:
                client = hub.client()
                assert client.login(user.uid, user.password, follow=False).status_code == 302, user.uid
                clients[user.uid] = client
            body = {"profile": "cpu"} if condor else {}
            # One at a time first (the hub's own overhead, uncontended), then all N at once.
            sequential: dict[str, dict] = {}
            for uid in list(clients)[: self.args.sequential]:
                sequential.update(self._spawn_all(hub, {uid: clients[uid]}, body))
                self._add_job_times(hub, {uid: sequential[uid]}, condor)
                self._stop_all(hub)
            result = self._measure(hub, condor, count_file, clients, body)
            result["sequential"] = sequential
            return result
        finally:
            self._stop_all(hub)
            hub.stop()

    def _spawn_all(self, hub: Hub, clients: dict[str, HubClient], body: dict) -> dict[str, dict]:
        """All of ``clients`` request their server at the same moment; request and ready times."""
        times: dict[str, dict] = {u: {} for u in clients}
        barrier = threading.Barrier(len(clients))

        def spawn(uid: str, client: HubClient) -> None:
            barrier.wait()
            times[uid]["request"] = time.time()
            r = client.api("POST", f"/users/{uid}/server", json=body, timeout=60)
            if r.status_code not in (201, 202):
                times[uid]["error"] = f"{r.status_code} {r.text[:200]}"
                return
            with client.http.get(
                f"{client.url}/hub/api/users/{uid}/server/progress", stream=True, timeout=600
            ) as stream:
                for line in stream.iter_lines(chunk_size=None, decode_unicode=True):
                    if line and line.startswith("data:"):
                        event = json.loads(line[5:])
                        if event.get("ready") or event.get("failed"):
                            times[uid]["ready" if event.get("ready") else "error"] = (
                                time.time() if event.get("ready") else event.get("message")
                            )
                            return

        threads = [threading.Thread(target=spawn, args=(u, c)) for u, c in clients.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        failed = {u: t.get("error", "no ready event") for u, t in times.items() if "error" in t or "ready" not in t}
        if failed:
            raise RuntimeError(f"{len(failed)} server(s) did not start: {failed}\n{hub.log_tail(40)}")
        return times

    def _measure(self, hub: Hub, condor: bool, count_file: Path, clients: dict, body: dict) -> dict:
        times = self._spawn_all(hub, clients, body)
        self._add_job_times(hub, times, condor)

        # The poll-cycle window: all N servers run, nobody asks the hub anything.
        time.sleep(3)
        metrics_before = self._queries(hub, condor, count_file)
        cpu_before = tree_cpu(hub.proc.pid)
        time.sleep(self.args.window)
        cpu_after = tree_cpu(hub.proc.pid)
        metrics_after = self._queries(hub, condor, count_file)
        cycles = self.args.window / self.args.poll_interval
        return {
            "servers": times,
            "queries_per_cycle": (metrics_after - metrics_before) / cycles,
            "cpu_per_cycle": (cpu_after - cpu_before) / cycles,
        }

    def _queries(self, hub: Hub, condor: bool, count_file: Path) -> float:
        if condor:
            text = requests.get(f"{hub.url}/hub/metrics", timeout=10).text
            match = re.search(r"^condorhub_schedd_queries_total (\S+)$", text, re.M)
            return float(match.group(1)) if match else 0.0
        return float(sum(1 for line in count_file.read_text().splitlines() if line == "query"))

    def _add_job_times(self, hub: Hub, times: dict, condor: bool) -> None:
        import htcondor2

        ads = htcondor2.Schedd().query(
            "JobStatus == 2", projection=["ClusterId", "Owner", "QDate", "JobCurrentStartDate", "Err"]
        )
        by_user = {ad["Owner"]: ad for ad in ads}
        log = hub.log_file.read_text(errors="replace").splitlines()
        for uid, t in times.items():
            ad = by_user[uid]
            cluster = ad["ClusterId"]
            t["queue_wait"] = ad["JobCurrentStartDate"] - ad["QDate"]
            if condor:
                marker = f"{uid}: Submitted to HTCondor as job {cluster}.0"
            else:
                # batchspawner logs condor_submit's output, which spans lines: the time is on the first.
                marker = f"submitted to cluster {cluster}."
            t["submitted"] = _time_of(log, marker)
            err = Path(ad["Err"]) if os.path.isabs(ad["Err"]) else Path(self.homes / uid / ad["Err"])
            t["listening"] = _time_of(err.read_text(errors="replace").splitlines(), "is running at")
            t["total"] = t["ready"] - t["request"]
            t["hub_side"] = (t["submitted"] - t["request"]) + (t["ready"] - t["listening"])

    def _stop_all(self, hub: Hub) -> None:
        import htcondor2

        for user in self.users:
            client = hub.client()
            if client.login(user.uid, user.password, follow=False).status_code == 302:
                if client.api("GET", "/user").json().get("servers"):
                    client.api("DELETE", f"/users/{user.uid}/server", timeout=60)
        deadline = time.monotonic() + 120
        schedd = htcondor2.Schedd()
        while schedd.query("JobStatus == 1 || JobStatus == 2", projection=["ClusterId"]) and time.monotonic() < deadline:
            time.sleep(1)
        schedd.act(htcondor2.JobAction.Remove, "true")
        while schedd.query("true", projection=["ClusterId"]) and time.monotonic() < deadline:
            time.sleep(1)


def summary(name: str, result: dict) -> list[str]:
    servers = list(result["servers"].values())
    alone = list(result.get("sequential", {}).values())

    def stats(key: str) -> str:
        values = [s[key] for s in servers]
        return f"{statistics.median(values):.2f} s | {percentile(values, 95):.2f} s | {max(values):.2f} s"

    literal = [s["total"] - s["queue_wait"] for s in servers]
    rows = []
    if alone:
        for label, key in (("total", "total"), ("hub-side", "hub_side")):
            values = [s[key] for s in alone]
            rows.append(
                f"| {name} | one spawn at a time ({len(alone)}×): {label} | {statistics.median(values):.2f} s | "
                f"{percentile(values, 95):.2f} s | {max(values):.2f} s |"
            )
    return rows + [
        f"| {name} | schedd queries per poll cycle ({len(servers)} servers running) | {result['queries_per_cycle']:.2f} | | |",
        f"| {name} | hub CPU per poll cycle | {result['cpu_per_cycle'] * 1000:.0f} ms | | |",
        f"| {name} | spawn: total, request → ready | {stats('total')} |",
        f"| {name} | spawn: queue wait (QDate → JobCurrentStartDate) | {stats('queue_wait')} |",
        f"| {name} | spawn: total − queue wait | {statistics.median(literal):.2f} s | {percentile(literal, 95):.2f} s | {max(literal):.2f} s |",
        f"| {name} | spawn: hub-side (request → submitted + listening → ready) | {stats('hub_side')} |",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=20, help="servers started at once (default 20)")
    parser.add_argument("--poll-interval", type=int, default=5, help="seconds between polls, both spawners (default 5)")
    parser.add_argument("--window", type=int, default=30, help="seconds of the poll-cycle measurement (default 30)")
    parser.add_argument("--only", choices=["condorhub", "stock"], help="run one spawner only")
    parser.add_argument("--sequential", type=int, default=5, help="servers first started one at a time (default 5)")
    parser.add_argument("--json", help="write the raw measurements here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs) for inspection")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root (the pool needs chroot and mounts)")
    bench = Bench(args)
    results = {}
    try:
        bench.up()
        for name in ("condorhub", "stock"):
            if args.only in (None, name):
                print(f"# {name}: {args.servers} servers ...", file=sys.stderr, flush=True)
                results[name] = bench.run(name)
    finally:
        bench.down()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    uname = platform.uname()
    print(
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {uname.system} {uname.release}, "
        f"Python {platform.python_version()}; {args.servers} servers at once ({args.sequential} one at a time "
        f"before), poll interval {args.poll_interval} s, window {args.window} s, load average "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print("| spawner | what | median | p95 | max |")
    print("|---|---|---|---|---|")
    for name, result in results.items():
        print("\n".join(summary(name, result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
