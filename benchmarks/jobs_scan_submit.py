"""Benchmark of the Lab's Jobs API (labextension/jobs/) against a real pool, as a student uses it.

    /opt/condorhub/venv/bin/python benchmarks/jobs_scan_submit.py [--points 100] [--repeat 3] [--history 1000]

As root. It sets up what the tests use, for real: a throw-away OpenLDAP with the demo users, the HTCondor 23.9
pool of ``devstack.pool`` (Debian root, nslcd, homes bind-mounted), alice's own IDTOKEN and CONDOR_CONFIG
(tests/support/user_tokens.py) and alice's Jupyter server with condorhub's extension running as alice
(tests/support/jobs_lab.py). Then, in the same run:

1. **Scan through the API**: ``POST /condorhub/api/scans`` of a ``--points``-point grid of a small script,
   from the request until the answer (the cluster is in the queue: one transaction), ``--repeat`` times.
2. **The same number of condor_submit calls**, as alice with the same credential, in one shell loop on the
   node (what a student without the panel types into a terminal), and one ``condor_submit`` with
   ``queue ... from`` item data (what an expert writes), for comparison.
3. **The panel's refresh**: ``GET /condorhub/api/jobs`` with ``--history`` of alice's jobs in the history
   (submitted on hold and removed; the API lists the newest 200), then with up to 900 more held in the queue
   (all listed; the pool's MAX_JOBS_PER_OWNER is 1000).

The scan's jobs are removed right after each measurement (the benchmark measures submitting, not running).
Prints a Markdown table for docs/benchmarks.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout: devstack/ and the tests' helpers (tests/support/)

from devstack.accounts import ensure_homes, ensure_service_account  # noqa: E402
from devstack.directory import DEMO_USERS  # noqa: E402
from devstack.pool import HTCondorPool  # noqa: E402
from tests.support.jobs_lab import STUDENT_PROFILES, JobsLab, server_env  # noqa: E402
from tests.support.ldap import start_seeded_slapd  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.scratch import scratch_dir  # noqa: E402
from tests.support.user_tokens import write_user_client  # noqa: E402

SCRIPT = "import sys\nprint(sys.argv[1:])\n"


def seed_users(pool: HTCondorPool) -> None:
    """The pool admits only users the hub has seen log in (issue 12 part 2, tests/support/pool_policy.py);
    a checkout without that policy admits every user."""
    try:
        from tests.support.pool_policy import seed_logged_in_users
    except ImportError:
        return
    seed_logged_in_users(pool)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = scratch_dir("condorhub-bench-jobs-")
        self.homes = self.work / "home"
        self.homes.mkdir(mode=0o755)
        self.slapd = None
        self.pool: HTCondorPool | None = None
        self.lab: JobsLab | None = None

    def up(self) -> None:
        self.slapd = start_seeded_slapd(self.work / "ldap", self.homes)
        ensure_homes(DEMO_USERS, self.homes)
        dn, password = ensure_service_account(self.slapd, "nslcd", "NSS lookups of the GPU nodes")
        self.pool = HTCondorPool(
            self.work / "pool", ldap_uri=self.slapd.uri, ldap_base=self.slapd.suffix, home_base=self.homes,
            probe_user="alice", ldap_bind_dn=dn, ldap_bind_password=password, port=free_port(),
            log=lambda msg: None,
        ).up()  # fmt: skip
        seed_users(self.pool)
        os.environ.update(self.pool.env)
        import htcondor2

        htcondor2.reload_config()
        self.client = write_user_client(self.pool, "alice", self.homes / "alice" / ".condorhub-bench-client")
        home = self.homes / "alice"
        self.lab = JobsLab("alice", home, server_env(self.client, STUDENT_PROFILES), home / ".bench-lab.log")
        self.lab.write("bench/echo.py", SCRIPT)

    def down(self) -> None:
        try:
            if self.lab is not None:
                self.lab.stop()
            if self.pool is not None:
                self.pool.down()
        finally:
            if self.slapd is not None:
                self.slapd.stop()
            shutil.rmtree(self.work, ignore_errors=True)

    # -- measurements ----------------------------------------------------------------------------------

    def remove_alices_jobs(self) -> None:
        import htcondor2

        htcondor2.Schedd().act(htcondor2.JobAction.Remove, 'Owner == "alice"')

    def scan_through_api(self) -> list[float]:
        assert self.lab is not None
        times = []
        for run in range(self.args.repeat):
            body = {"path": "bench/echo.py", "profile": "cpu", "folder": f"bench/scan-{run}",
                    "grid": {"i": f"1:{self.args.points}"}}  # fmt: skip
            start = time.perf_counter()
            reply = self.lab.jobs_api("POST", "scans", json_body=body, timeout=300)
            times.append(time.perf_counter() - start)
            assert reply.code == 200 and reply.json["count"] == self.args.points, reply
            self.remove_alices_jobs()
            self.wait_drained()
        return times

    def condor_submit_loop(self) -> tuple[float, float]:
        assert self.pool is not None and self.lab is not None
        folder = self.lab.home / "bench" / "loop"
        self.lab.write("bench/loop/echo.sub", (
            "executable = /bin/true\nshould_transfer_files = NO\noutput = job.out\nerror = job.err\n"
            "request_cpus = 1\nrequest_memory = 256MB\nallowed_job_duration = 1800\nqueue\n"
        ))  # fmt: skip
        n = self.args.points
        start = time.perf_counter()
        script = f"cd {folder} && for i in $(seq {n}); do condor_submit -terse echo.sub >/dev/null || exit 1; done"
        loop = self.client.run_in_root(self.pool, script, timeout=1800)
        loop_time = time.perf_counter() - start
        assert loop.returncode == 0, loop.stderr[-2000:]
        self.remove_alices_jobs()
        self.wait_drained()
        items = "\n".join(str(i) for i in range(1, n + 1))
        self.lab.write("bench/loop/items.sub", (
            "executable = /bin/true\narguments = $(i)\nshould_transfer_files = NO\noutput = job.out\n"
            "error = job.err\nrequest_cpus = 1\nrequest_memory = 256MB\nallowed_job_duration = 1800\n"
            f"queue i from (\n{items}\n)\n"
        ))  # fmt: skip
        start = time.perf_counter()
        once = self.client.run_in_root(self.pool, f"cd {folder} && condor_submit -terse items.sub", timeout=600)
        once_time = time.perf_counter() - start
        assert once.returncode == 0, once.stderr[-2000:]
        self.remove_alices_jobs()
        self.wait_drained()
        return loop_time, once_time

    def wait_drained(self) -> None:
        """Until alice has no job in the queue: removed jobs count against MAX_JOBS_PER_OWNER (the pool
        policy's per-user limit) until the schedd has moved them to its history."""
        import htcondor2

        deadline = time.monotonic() + 120
        while htcondor2.Schedd().query('Owner == "alice"', projection=["ProcId"], limit=1):
            assert time.monotonic() < deadline, "alice's removed jobs did not leave the queue"
            time.sleep(0.5)

    def fill(self, count: int, *, history: bool, chunk: int = 500) -> None:
        """``count`` jobs of alice's, held (never run); removed into the history when ``history`` (in chunks:
        the pool limits how many jobs one user has in the queue)."""
        assert self.pool is not None and self.lab is not None
        left = count
        while left > 0:
            n = min(chunk if history else count, left)
            self.lab.write("bench/held.sub", (
                "executable = /bin/true\nshould_transfer_files = NO\nhold = true\nrequest_cpus = 1\n"
                f"request_memory = 256MB\nallowed_job_duration = 1800\nqueue {n}\n"
            ))  # fmt: skip
            deadline = time.monotonic() + 600
            while True:
                done = self.client.run_in_root(self.pool, f"cd {self.lab.home}/bench && condor_submit -terse held.sub",
                                               timeout=600)  # fmt: skip
                if done.returncode == 0 or "MAX_JOBS_PER_OWNER" not in done.stderr or time.monotonic() > deadline:
                    break
                # The schedd counts a user's jobs for MAX_JOBS_PER_OWNER in its periodic pass: jobs removed
                # a moment ago still count. A reschedule runs that pass sooner.
                self.pool.run_in_root(["condor_reschedule"], check=False)
                time.sleep(5)
            assert done.returncode == 0, done.stderr[-2000:]
            left -= n
            if history:
                self.remove_alices_jobs()
                self.wait_drained()

    def list_jobs(self) -> tuple[list[float], int]:
        assert self.lab is not None
        times, listed = [], 0
        self.lab.jobs_api("GET", "jobs")  # warm: the schedd's address is located once
        for _ in range(10):
            start = time.perf_counter()
            reply = self.lab.jobs_api("GET", "jobs", timeout=120)
            times.append(time.perf_counter() - start)
            assert reply.code == 200 and reply.json["schedd"] == "ok", reply
            listed = len(reply.json["jobs"])
        return times, listed


def row(what: str, times: list[float], goal: str = "–") -> str:
    return (f"| {what} | {len(times)} | {statistics.median(times):.3f} s | {min(times):.3f} s | "
            f"{max(times):.3f} s | {goal} |")  # fmt: skip


def machine() -> str:
    cores = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return (f"{time.strftime('%Y-%m-%d')}, {cores} cores, {mem:.0f} GiB RAM, Linux {platform.release()}, Python "
            f"{platform.python_version()}, htcondor2 {metadata.version('htcondor')} (server) / HTCondor 23.9 (pool); "
            f"load average {load:.1f} at the end")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100, help="points of the scan (and condor_submit calls)")
    parser.add_argument("--repeat", type=int, default=3, help="scans submitted through the API")
    parser.add_argument("--history", type=int, default=1000, help="jobs in alice's history for GET jobs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root (the pool needs chroot and mounts; the server runs as alice)")
    bench = Bench(args)
    try:
        bench.up()
        scan = bench.scan_through_api()
        print(f"# scan through the API: {scan}", file=sys.stderr)
        loop, once = bench.condor_submit_loop()
        print(f"# condor_submit loop {loop:.3f} s, one queue-from submit {once:.3f} s", file=sys.stderr)
        bench.fill(args.history, history=True)
        history, listed_history = bench.list_jobs()
        print(f"# GET jobs, history: {history} ({listed_history} listed)", file=sys.stderr)
        # In the queue: fewer than the pool's MAX_JOBS_PER_OWNER (1000 by default, the pool policy's).
        in_queue = min(args.history, 900)
        bench.fill(in_queue, history=False)
        queue, listed_queue = bench.list_jobs()
        print(f"# GET jobs, queue: {queue} ({listed_queue} listed)", file=sys.stderr)
        bench.remove_alices_jobs()
    finally:
        bench.down()
    n = args.points
    print(f"\n{machine()}\n")
    print("| what | runs | median | min | max | goal |\n|---|---|---|---|---|---|")
    print(row(f"{n}-point scan through the API (POST scans → submitted, one cluster)", scan, "< 2 s"))
    print(f"| {n} × `condor_submit` in a shell loop (as alice, same credential) | 1 | {loop:.3f} s | | | – |")
    print(f"| one `condor_submit` with `queue i from` {n} items | 1 | {once:.3f} s | | | – |")
    print(row(f"GET jobs, {args.history} jobs in the history ({listed_history} listed)", history))
    print(row(f"GET jobs, {in_queue} more in the queue ({listed_queue} listed)", queue))
    return 0


if __name__ == "__main__":
    sys.exit(main())
