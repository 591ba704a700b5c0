"""kvnet's own dataplane paths in the pps harness: built through the API and agents, measured next to
their hand-built reference, and torn down completely."""

from __future__ import annotations

import pytest

from kvnet.bench.dataplane.run import run_dataplane_bench
from kvnet.sys import netns

pytestmark = pytest.mark.root


def test_kvnet_vxlan_path_is_measured_against_its_reference_and_removed() -> None:
    before = set(netns.list_with_prefix("kb")) | set(netns.list_with_prefix("kvbd"))
    entries = run_dataplane_bench(["vxlan", "kvnet-vxlan"], sizes=(64,), seconds=0.5, repeats=1, ping_count=10)
    kvnet = next(e for e in entries if e["path"] == "kvnet-vxlan")
    assert kvnet["reference"] == "vxlan" and kvnet["pps"] > 1000 and kvnet["loss"] < 0.05
    assert kvnet["ratio_to_reference"] is not None and kvnet["ratio_to_reference"] > 0
    after = set(netns.list_with_prefix("kb")) | set(netns.list_with_prefix("kvbd"))
    assert after - before == set(), "the paths left namespaces behind"


def test_filtered_path_with_a_thousand_rules_is_measured_against_its_hand_built_reference() -> None:
    before = set(netns.list_with_prefix("kb")) | set(netns.list_with_prefix("kvbd"))
    entries = run_dataplane_bench(["bridge-nft-ref", "kvnet-bridge-sg1000"], sizes=(64,), seconds=0.5, repeats=1,
                                  ping_count=3)
    by_path = {e["path"]: e for e in entries}
    filtered, reference = by_path["kvnet-bridge-sg1000"], by_path["bridge-nft-ref"]
    assert filtered["reference"] == "bridge-nft-ref"
    assert filtered["pps"] > 1000 and reference["pps"] > 1000  # the flow passes the last of 1,000 rules
    assert filtered["ratio_to_reference"] is not None and filtered["ratio_to_reference"] > 0
    after = set(netns.list_with_prefix("kb")) | set(netns.list_with_prefix("kvbd"))
    assert after - before == set(), "the paths left namespaces behind"
