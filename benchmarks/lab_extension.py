"""Benchmark of condorhub's Lab extension through its REST API, on a real jupyter-server subprocess.

    /opt/condorhub/venv/bin/python benchmarks/lab_extension.py [--files 10000] [--repeat 5]

1. Scan browser: list and match a generated scan tree of --files files (4 folder levels), end to end:
   HTTP POST, walk, regex match, JSON answer, decoded by the client. Goal: < 1 s for 10,000 files.
2. TensorBoard: from POST "start" until its UI answers through the server's proxy (the index page),
   and until its data API lists the runs. Goal: < 5 s.

Prints a Markdown table for docs/benchmarks.md, with the machine and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from condorhub.lab.tensorboard.manager import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: devstack/ (sample data)
from devstack.samples.scan import make_large_scan  # noqa: E402
from devstack.samples.tensorboard import write_scalars  # noqa: E402

PATTERN = r"a_(?P<a>\d+)/b_(?P<b>\d+)/c_(?P<c>\d+)/plot_(?P<k>\d+)\.png"


class Server:
    """`jupyter server` with the condorhub.lab extension, token auth, in a scratch root."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"

    def __enter__(self):
        self.log = open(self.root.parent / "server.log", "wb")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "jupyter"), "server", "--no-browser", "--allow-root",
                f"--port={self.port}", f"--ServerApp.root_dir={self.root}", f"--IdentityProvider.token={self.token}",
                "--ServerApp.jpserver_extensions={'condorhub.lab': True}",
            ],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.http.get(f"{self.url}/api/status", timeout=2).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("jupyter server did not start; see " + str(self.root.parent / "server.log"))

    def __exit__(self, *exc):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def bench_scan(server: Server, files: int, repeat: int) -> list[tuple[str, list[float], str]]:
    make_large_scan(server.root / "big", files)

    def match():
        r = server.http.post(f"{server.url}/condorhub/api/scan/match", json={"path": "big", "pattern": PATTERN}, timeout=60)
        r.raise_for_status()
        return r.json()

    def suggest():
        r = server.http.get(f"{server.url}/condorhub/api/scan/suggest", params={"path": "big"}, timeout=60)
        r.raise_for_status()
        return r.json()

    match()  # warm the page cache and the server's imports: the user's second click, not a cold disk
    match_times, answer = timed(match, repeat)
    assert answer["total_matches"] == files, answer["total_matches"]
    suggest_times, _ = timed(suggest, repeat)
    return [
        (f"scan: match {files:,} files (POST /condorhub/api/scan/match)", match_times, "< 1 s"),
        (f"scan: suggest a pattern for {files:,} files", suggest_times, "–"),
    ]


def bench_tensorboard(server: Server, repeat: int) -> list[tuple[str, list[float], str]]:
    write_scalars(server.root / "runs")
    ui, data = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        r = server.http.post(f"{server.url}/condorhub/api/tensorboard", json={"logdir": "runs"}, timeout=30)
        r.raise_for_status()
        inst = r.json()
        page = server.http.get(f"{server.url}/{inst['url']}", timeout=130)  # the proxy holds it until ready
        assert page.ok and "tb-relative-root" in page.text, page.status_code
        ui.append(time.perf_counter() - start)
        runs = server.http.get(f"{server.url}/{inst['url']}data/runs", timeout=60).json()
        assert sorted(runs) == ["lr_0.01", "lr_0.1"], runs
        data.append(time.perf_counter() - start)
        server.http.delete(f"{server.url}/condorhub/api/tensorboard/{inst['id']}", timeout=30).raise_for_status()
    return [
        ("TensorBoard: start → its UI answers through the proxy", ui, "< 5 s"),
        ("TensorBoard: start → its data API lists the runs", data, "–"),
    ]


def machine() -> str:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="condorhub-bench-"))
    root = work / "root"
    root.mkdir()
    try:
        with Server(root) as server:
            rows = bench_scan(server, args.files, args.repeat) + bench_tensorboard(server, max(1, args.repeat // 2 + 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{time.strftime('%Y-%m-%d')}, {machine()}\n")
    print("| what | runs | median | min | max | goal |")
    print("|---|---|---|---|---|---|")
    for name, times, goal in rows:
        print(f"| {name} | {len(times)} | {statistics.median(times):.3f} s | {min(times):.3f} s | {max(times):.3f} s | {goal} |")


if __name__ == "__main__":
    main()
