"""condorhub.data throughput and memory on MLaaS4HEP's benchmark shape.

MLaaS4HEP (Kuznetsov et al.) reports, on a 4-core VM with 74 branches (22 flat, 52 jagged), 1.1-1.2 k
events/s for turning ROOT chunks into padded, normalized arrays and 8.4-13.7 k events/s for reading plus
specs. This script writes files of that shape (condorhub.data.toy.write_wide_file: 6 collections with
NanoAOD-like multiplicities, 50 k events per basket) in several sizes and measures, each in a fresh process:

- specs: the first pass (read + per-branch statistics + longest lists);
- read + pad + normalize: every chunk of the file as a float32 matrix (74 branches → 334 columns with
  pad length 6) plus mask, the stream's default prefetch on (reading overlaps encoding);
- peak memory (ru_maxrss of the measuring process) against file size: it should stay flat.

The machine is shared, so each rate is the best of --repeat passes (wall clock), with the CPU time of the
same pass (events per CPU-second: what one dedicated core does) and the load average beside it.

    python benchmarks/data_throughput.py                      # 250k, 500k, 1M, 2M events, LZ4
    python benchmarks/data_throughput.py --sizes 100000 --compression zlib --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def measure(path: str, chunk_size: int, pad_length: int, repeat: int) -> dict:
    """In this (fresh) process: specs pass, then ``repeat`` full read + pad + normalize passes."""
    from condorhub.data import RootStream, toy

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stream = RootStream(path, branches=toy.wide_branches(), pad_length=pad_length, chunk_size=chunk_size)
    n = stream.num_events

    wall, cpu = time.perf_counter(), time.process_time()
    stream.fit_specs()
    specs = {"wall": n / (time.perf_counter() - wall), "cpu": n / (time.process_time() - cpu)}

    passes = []
    for _ in range(repeat):
        load = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        rows = 0
        for chunk in stream.chunks(shuffle=False):
            rows += len(chunk)
        passes.append({"wall": n / (time.perf_counter() - wall), "cpu": n / (time.process_time() - cpu), "load": load})
        assert rows == n
    best = max(passes, key=lambda p: p["wall"])
    return {
        "events": n,
        "file_mb": os.path.getsize(path) / 2**20,
        "columns": stream.layout.width,
        "specs": specs,
        "encode": best,
        "encode_passes": passes,
        "baseline_rss_mb": baseline / 1024,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import awkward
    import numpy
    import uproot

    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30),
            "python": platform.python_version(), "numpy": numpy.__version__, "uproot": uproot.__version__,
            "awkward": awkward.__version__, "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250000,500000,1000000,2000000", help="events per file, comma-separated")
    parser.add_argument("--compression", choices=["lz4", "zlib", "none"], default="lz4")
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--pad-length", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default="/var/tmp/condorhub-bench", help="where the files are written (kept for reruns)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: measure one file in this process
    args = parser.parse_args(argv)

    if args.measure:
        print(json.dumps(measure(args.measure, args.chunk_size, args.pad_length, args.repeat)))
        return 0

    import uproot

    from condorhub.data import toy

    compression = {"lz4": uproot.LZ4(1), "zlib": uproot.ZLIB(1), "none": None}[args.compression]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"# {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; {info['date']}; load {os.getloadavg()[0]:.1f}",
          file=sys.stderr)
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        path = workdir / f"wide_{n}_{args.compression}.root"
        if not path.exists():
            start = time.perf_counter()
            toy.write_wide_file(path.with_suffix(".tmp"), n, compression=compression)
            path.with_suffix(".tmp").rename(path)
            print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        done = subprocess.run(
            [sys.executable, __file__, "--measure", str(path), "--chunk-size", str(args.chunk_size),
             "--pad-length", str(args.pad_length), "--repeat", str(args.repeat)],
            capture_output=True, text=True, check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{n:>9,} events: specs {r['specs']['wall']:>11,.0f}/s, read+pad+normalize {r['encode']['wall']:>11,.0f}/s "
              f"({r['encode']['cpu']:,.0f}/CPU-s), peak RSS {r['peak_rss_mb']:.0f} MiB", file=sys.stderr)

    print(f"\n{args.compression.upper()} files, chunks of {args.chunk_size:,} events, pad length {args.pad_length} "
          f"→ {results[0]['columns']} float32 columns + mask\n")
    print("| events | file (MiB) | specs pass (events/s) | read + pad + normalize (events/s) | same, per CPU-second | load avg | peak RSS (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['events']:,} | {r['file_mb']:,.0f} | {r['specs']['wall']:,.0f} | {r['encode']['wall']:,.0f} | "
              f"{r['encode']['cpu']:,.0f} | {r['encode']['load']:.1f} | {r['peak_rss_mb']:,.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
