"""kvnet's routed dataplane paths (DVR east-west, floating IP from the internet, SNAT to the internet) in
the pps harness: built through the API and agents in one shared lab, each measured next to its hand-built
reference of the same construct, and everything torn down afterwards."""

from __future__ import annotations

import pytest

from kvnet.bench.dataplane import base
from kvnet.bench.dataplane.base import Endpoints
from kvnet.bench.dataplane.bridged_paths import build_fip, build_fip_source_routed, build_snat
from kvnet.bench.dataplane.kvnet_paths import ROUTED_LAB, ROUTED_PATHS, KvnetRoutedPath, RoutedBench, RoutedLab
from kvnet.bench.dataplane.run import DEFAULT_PATHS, run_dataplane_bench
from kvnet.sys import netns
from kvnet.sys.cmd import run, run_json

pytestmark = pytest.mark.root

PAIRS = {"kvnet-dvr": "dvr-ref", "kvnet-fip": "fip-ref", "kvnet-fip-mixed": "fip-ref", "kvnet-fip-out": "fip-out-ref",
         "kvnet-snat": "snat-ref"}


def test_routed_pairs_are_default_paths() -> None:
    assert set(PAIRS) | set(PAIRS.values()) <= set(DEFAULT_PATHS)
    assert {base.get(name).reference for name in ROUTED_PATHS} == set(PAIRS.values())


def test_routed_paths_measured_against_their_references_in_one_lab_and_removed() -> None:
    order = list(dict.fromkeys(p for pair in PAIRS.items() for p in reversed(pair)))
    entries = run_dataplane_bench(order, sizes=(64,), seconds=0.5, repeats=1, ping_count=10, ns_prefix="kvtR")
    by_path = {e["path"]: e for e in entries}
    for kvnet_path, reference in PAIRS.items():
        for name in (kvnet_path, reference):
            assert by_path[name]["pps"] > 1000, (name, by_path[name])
            assert by_path[name]["loss"] < 0.05, (name, by_path[name])
            assert by_path[name]["rtt_p50_ms"] is not None, name  # pings answered: the reverse path works too
        assert by_path[kvnet_path]["reference"] == reference
        assert by_path[kvnet_path]["ratio_to_reference"] is not None and by_path[kvnet_path]["ratio_to_reference"] > 0
    assert ROUTED_LAB.users == 0 and ROUTED_LAB.bench is None and ROUTED_LAB.last_lab
    assert netns.list_with_prefix(f"{ROUTED_LAB.last_lab}-") == [] and netns.list_with_prefix("kvtR") == []


def _nft(ns: str) -> str:
    return run(["nft", "list", "table", "ip", "kvnet"], netns=ns).stdout


def test_references_use_the_nat_kvnet_uses() -> None:
    """fip-ref rewrites statelessly at raw prerouting (no conntrack), snat-ref SNATs through conntrack."""
    with base.namespaces(base.unique_prefix("kvtR")) as ns:
        fip = build_fip(ns)
        rules = _nft(f"{ns.prefix}-rt")
        assert "hook prerouting priority raw" in rules and "ip daddr set ip daddr map @fip_in" in rules
        assert "type nat" not in rules and fip.dst_ip not in run(["ip", "-n", fip.receiver_ns, "-br", "addr"]).stdout
    with base.namespaces(base.unique_prefix("kvtR")) as ns:
        build_fip_source_routed(ns)  # the same, plus the policy rule kvnet avoids (priced, not default)
        rules = run_json(["ip", "-j", "rule", "show"], netns=f"{ns.prefix}-rt")
        assert [(r["priority"], r.get("src")) for r in rules] == [(0, "all"), (30000, "10.96.2.31"),
                                                                   (32766, "all"), (32767, "all")]
    with base.namespaces(base.unique_prefix("kvtR")) as ns:
        build_snat(ns)
        assert "type nat hook postrouting" in _nft(f"{ns.prefix}-rt")
    assert netns.list_with_prefix("kvtR") == []


def test_shared_lab_is_removed_when_a_path_fails_to_build() -> None:
    def broken(bench: RoutedBench) -> Endpoints:
        raise RuntimeError(f"no endpoints in {bench.lab.name}")

    shared = RoutedLab()
    path = KvnetRoutedPath("kvnet-broken", "dvr-ref", "fails after the lab is up", broken, shared)
    with pytest.raises(RuntimeError, match="no endpoints"), path.build("unused"):
        pass
    assert shared.users == 0 and shared.bench is None and shared.last_lab
    assert netns.list_with_prefix(f"{shared.last_lab}-") == []
