"""OVS paths in the pps harness: the hand-built OVS VXLAN reference (two OVS instances of its own) and kvnet's
OVS VXLAN path (a lab of OVS hosts through the API), measured in one run and removed completely afterwards.

The userspace datapath reads the VM's veth asynchronously: a flat-out trafgen (~160 kpps here) is not slowed
down by it, and what OVS cannot forward (~35 kpps) is dropped in its AF_PACKET buffer (~256 frames) -- about
80% loss, which `kvnet bench dataplane` reports as is. Even trafgen's `--rate` overflows that buffer (it sends
each second's packets as one burst). This test checks the paths themselves, so it paces frame by frame
(`--gap`, a few kpps), well under what OVS forwards without loss (~30 kpps, /work/shared/facts/ovs-userspace.md)."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from kvnet.bench.dataplane import base
from kvnet.bench.dataplane.generators import Trafgen
from kvnet.bench.dataplane.ovs_paths import KVNET_OVS_VXLAN, KVNET_OVS_VXLAN_OPEN, OVS_PATHS, OVS_VXLAN_REF
from kvnet.bench.dataplane.run import DEFAULT_PATHS, run_dataplane_bench
from kvnet.sys import netns

pytestmark = pytest.mark.root
PREFIX = "kvtO"
GAP_US = 100  # ~3 kpps
OURS = re.compile(rf"/tmp/kvovs|/{PREFIX}[0-9a-f]{{4}}/")


def bench_ovs_daemons() -> list[str]:
    """Command lines of ovsdb-server / ovs-vswitchd processes of this test's paths: the reference's run
    directories are /tmp/kvovs*, the kvnet lab's are under its lab directory (named PREFIX + 4 hex)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if argv and Path(argv[0]).name in ("ovsdb-server", "ovs-vswitchd") and OURS.search(" ".join(argv)):
            found.append(" ".join(argv))
    return found


def test_ovs_paths_are_registered_but_not_default() -> None:
    assert base.get(KVNET_OVS_VXLAN.name).reference == OVS_VXLAN_REF.name
    assert base.get(OVS_VXLAN_REF.name).reference == "vxlan"
    assert not set(OVS_PATHS) & set(DEFAULT_PATHS)


def test_ovs_paths_measured_against_the_hand_built_ovs_reference_and_removed() -> None:
    assert bench_ovs_daemons() == []
    kvnet_paths = [replace(p, lab_name=lambda: f"{PREFIX}{secrets.token_hex(2)}")
                   for p in (KVNET_OVS_VXLAN, KVNET_OVS_VXLAN_OPEN)]  # filtered, and without port security
    entries = run_dataplane_bench([OVS_VXLAN_REF.name, *kvnet_paths], sizes=(64,), seconds=0.5, repeats=1,
                                  ping_count=10, ns_prefix=PREFIX, generator=Trafgen(gap_us=GAP_US))
    by_path = {e["path"]: e for e in entries}
    for name in OVS_PATHS:
        assert by_path[name]["pps"] > 1000, (name, by_path[name])
        assert by_path[name]["loss"] < 0.5, (name, by_path[name])
        assert by_path[name]["rtt_p50_ms"] is not None, name  # pings answered: the reverse path works too
    kvnet = by_path[KVNET_OVS_VXLAN.name]
    assert kvnet["reference"] == OVS_VXLAN_REF.name
    assert kvnet["ratio_to_reference"] is not None and kvnet["ratio_to_reference"] > 0
    assert netns.list_with_prefix(PREFIX) == []  # the reference's and the lab's namespaces
    assert bench_ovs_daemons() == []  # every OVS instance the run started is stopped
