"""The programming benchmark: its plan shape (pure) and a small real run (root)."""

from __future__ import annotations

import pytest

from kvnet.bench.programming import NS_PREFIX, bench_plan, run_programming_bench
from kvnet.dataplane.linux.render import render
from kvnet.sys import netns


def test_bench_plan_has_one_fdb_and_neighbour_entry_per_remote_port() -> None:
    plan = bench_plan(2500)
    assert len(plan.networks) == 3
    state = render(plan)
    assert len([f for f in state.fdb if not f.flood]) == 2500
    assert len(state.neigh) == 2500
    assert len({f.mac for f in state.fdb if not f.flood}) == 2500  # unique MACs


@pytest.mark.root
def test_small_programming_bench_runs_and_cleans_up() -> None:
    before = set(netns.list_with_prefix(NS_PREFIX))
    result = run_programming_bench(entries=300, repeats=2)
    assert result["objects"] >= 600 and result["noop_changes"] == 0
    assert result["objects_per_s"]["median"] > 0
    assert result["noop_resync_s"]["min"] <= result["noop_resync_s"]["median"]
    assert set(netns.list_with_prefix(NS_PREFIX)) == before
