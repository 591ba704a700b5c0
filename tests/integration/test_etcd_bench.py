"""The etcd benchmark harness at small sizes: it runs, measures both engines and cleans up."""

from __future__ import annotations

import shutil

import pytest

from kvnet.bench.etcd import compare_watch_and_faults, markdown_watch

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")


@pytest.mark.timeout(120)
def test_watch_latency_and_leader_kill_harness() -> None:
    results = compare_watch_and_faults(samples=5, progress=lambda _: None, writes=10)
    for store in ("sqlite", "etcd"):
        latency = results[f"watch_latency_{store}"]
        assert latency["samples"] == 5 and 0 < latency["p50_ms"] <= latency["p99_ms"] < 5000
    kill = results["leader_kill"]
    assert kill["errors"] == [] and 0 < kill["longest_write_gap_ms"] < 5000 and kill["kill_to_agent_event_ms"]
    assert "leader SIGKILL" in markdown_watch(results)
