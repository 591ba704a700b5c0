"""The Linux filter programming benchmark's harness, at a small size (the real run: 1,000 ports), and
its report."""

from __future__ import annotations

import pytest

from kvnet.bench.filter_programming import markdown, run_filter_programming_bench
from kvnet.bench.results import envelope
from kvnet.sys import netns

pytestmark = pytest.mark.root


def test_bench_programs_every_filter_and_a_second_pass_changes_nothing() -> None:
    before = set(netns.list_with_prefix("kvbf"))
    result = run_filter_programming_bench(ports=30, repeats=1)
    assert result["filters"] == 30 and result["noop_changes"] == 0
    assert all(len(v) == 1 and v[0] > 0 for v in result["samples"].values())
    assert result["meets_goal"] == (result["median"]["program_s"] <= result["goal_program_s"])
    assert "| no-op resync (0 changes) |" in markdown(envelope("filter_programming", result))
    assert set(netns.list_with_prefix("kvbf")) == before  # its namespace is gone again
