"""The OVS programming benchmark's harness, at a small size (the real run: 1,000 ports)."""

from __future__ import annotations

import pytest

from kvnet.bench.ovs_programming import bench_plan, run_ovs_programming_bench
from kvnet.sys import netns

pytestmark = pytest.mark.root


def test_bench_programs_every_port_and_a_second_pass_changes_nothing() -> None:
    before = set(netns.list_with_prefix("kvbo"))
    result = run_ovs_programming_bench(ports=20, repeats=1)
    plan = bench_plan(20)
    assert result["ports"] == len(plan.ports) == 20
    assert result["flows"] > 2 * 20 + len(plan.networks[0].remotes)  # per port, per remote, per table
    assert result["noop_changes"] == 0
    assert result["cold_s"]["median"] > result["noop_s"]["median"] > 0
    assert set(netns.list_with_prefix("kvbo")) == before  # its namespace is gone again


def test_bench_with_groups_filters_every_port_and_times_a_member_and_a_rule() -> None:
    result = run_ovs_programming_bench(ports=20, repeats=1, groups=True)
    assert result["filtered_ports"] == 20 and result["group_members"] == 20 + 100  # here, and remote
    assert result["noop_changes"] == 0
    assert result["member_s"]["median"] > 0 and result["rule_s"]["median"] > 0
    assert result["flows"] > 20 * 5 + 120  # each port's filter flows, one per member (rule flows are shared)
