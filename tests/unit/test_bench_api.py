"""The API benchmark's harness on a tiny run: a real server subprocess, every create checked."""

from __future__ import annotations

from pathlib import Path

from kvnet.bench import api
from kvnet.bench.results import read_result, write_result


def test_small_api_bench_reports_rates_and_writes_results(tmp_path: Path) -> None:
    data = api.run_api_bench(ports=24, workers=4, repeats=1)
    results = data["results"]
    for mode in ("sequential", "concurrent", "in_process"):
        assert results[mode]["ports_per_s"] > 0
        assert results[mode]["spread"]["n"] == 1
    assert data["machine"]["nproc"] >= 1 and data["kvnet_version"]
    write_result("api", data, tmp_path, markdown=api.markdown(data))
    assert read_result("api", tmp_path)["results"]["ports_per_run"] == 24
    assert "| sequential |" in (tmp_path / "api.md").read_text()
