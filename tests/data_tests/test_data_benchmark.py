"""The benchmark script runs end to end on small files and reports what docs/benchmarks.md quotes."""

from __future__ import annotations

import runpy
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "data_throughput.py"


def test_benchmark_reports_rates_and_memory(tmp_path, capsys):
    main = runpy.run_path(str(BENCHMARK))["main"]
    assert main(["--sizes", "3000,6000", "--chunk-size", "2000", "--repeat", "1", "--workdir", str(tmp_path),
                 "--json", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "→ 334 float32 columns + mask" in table  # 22 flat + 52 jagged x 6
    rows = [line for line in table.splitlines() if line.startswith("| 3,000") or line.startswith("| 6,000")]
    assert len(rows) == 2
    import json

    results = json.loads((tmp_path / "r.json").read_text())["results"]
    for r in results:
        assert r["encode"]["wall"] > 0 and r["specs"]["wall"] > 0
        assert r["peak_rss_mb"] >= r["baseline_rss_mb"] > 0
