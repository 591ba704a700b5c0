"""`kvnet-vf` in the pps harness: a VM's direct port, bound to a VF by the server and configured by the agent,
sends to a receiver on the provider network's segment; measured, then torn down completely.

The VF is the lab's emulation (kvnet/lab/sriov.py): a macvlan endpoint on a veth "PF", handed to the VM with
tc mirred. Everything above the VFDriver (binding, compile_vfs, VFReconciler) is the production code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kvnet.bench.dataplane import base
from kvnet.bench.dataplane.run import run_dataplane_bench
from kvnet.bench.dataplane.vf_paths import HOST, KVNET_VF, VLAN, VFSession
from kvnet.lab import names as n
from kvnet.lab.sriov import PF_NAME, SRIOV_PHYSNET, config_path, pf_peer
from kvnet.sriov.emulated import endpoint_name
from kvnet.sriov.source import EmulatedSriov
from kvnet.sriov.vf import VFSettings
from kvnet.sys import netns
from kvnet.sys.cmd import run, run_json

pytestmark = pytest.mark.root
PREFIX = "kvtV"


def test_registered_with_its_reference_and_says_it_is_emulated() -> None:
    path = base.get("kvnet-vf")
    assert path is KVNET_VF and isinstance(path, base.Path)
    assert path.reference == "kvnet-bridge"
    assert "EMULATED" in path.description


def inspect(seen: dict[str, Any]) -> Callable[[VFSession], None]:
    """Checks of the live path (an assertion here fails the run, which still tears down); kernel facts are
    recorded in `seen` and asserted after teardown."""

    def check(s: VFSession) -> None:
        seen["lab"], seen["dir"], seen["endpoints"] = s.lab.name, Path(s.lab.dir), s.endpoints
        profile = s.port["binding_profile"]
        seen["profile"] = profile
        assert s.port["status"] == "ACTIVE" and s.port["vnic_type"] == "direct"
        assert profile["pf"] == PF_NAME and profile["physical_network"] == SRIOV_PHYSNET
        assert profile["vf_index"] == 0 and profile["pci_slot"].startswith("ffff:")
        # Configured by the agent, read back through the agent's own driver (kernel MAC + recorded VLAN).
        driver = EmulatedSriov(config_path(s.lab.dir, HOST)).driver(PF_NAME)
        seen["vf"] = driver.read(PF_NAME, profile["vf_index"])
        hns = n.host_ns(s.lab.name, HOST)
        links = {link["ifname"]: link for link in run_json(["ip", "-j", "link", "show"], netns=hns)}
        vf_dev = endpoint_name(PF_NAME, profile["vf_index"])
        seen["vf_link"] = links.get(vf_dev)
        seen["vm_dev_master"] = links[s.vm["device"]].get("master")
        seen["redirect"] = run(["tc", "filter", "show", "dev", s.vm["device"], "ingress"], netns=hns).stdout
        seen["vf_dev"] = vf_dev
    return check


def test_vf_path_is_measured_bound_configured_and_removed() -> None:
    seen: dict[str, Any] = {}
    probe = dataclasses.replace(KVNET_VF, observe=inspect(seen))
    entries = run_dataplane_bench([probe], sizes=(64,), seconds=0.5, repeats=1, ping_count=10, ns_prefix=PREFIX)
    vf = next(e for e in entries if e["path"] == "kvnet-vf")
    assert vf["pps"] > 1000 and vf["loss"] < 0.05, vf
    assert vf["rtt_p50_ms"] is not None, "pings answered: the receiver reaches the VM back through the VF"
    assert vf["reference"] == "kvnet-bridge"

    port_mac = seen["endpoints"].src_mac
    assert seen["vf"] == VFSettings(mac=port_mac, vlan=VLAN), seen["vf"]
    assert seen["vf_link"] is not None and seen["vf_link"]["address"] == port_mac
    assert seen["vf_link"].get("link") == PF_NAME, "the VF endpoint sits on the PF"
    assert seen["vm_dev_master"] is None, "a direct port is in no bridge"
    assert f"Redirect to device {seen['vf_dev']}" in seen["redirect"], seen["redirect"]
    assert seen["endpoints"].receiver_ns.startswith(PREFIX)

    assert netns.list_with_prefix(n.prefix(seen["lab"])) == []
    assert netns.list_with_prefix(PREFIX) == []
    assert not seen["dir"].exists()


def test_a_failure_after_building_leaves_nothing() -> None:
    seen: dict[str, Any] = {}

    def fail(s: VFSession) -> None:
        seen["lab"], seen["receiver"] = s.lab.name, s.endpoints.receiver_ns
        # Built through the PF: the segment learned the VM's MAC on the PF's port (the path checked it too).
        fdb = run(["bridge", "fdb", "show", "br", n.EXT_BRIDGE], netns=n.ext_ns(s.lab.name)).stdout
        seen["fdb"] = [line for line in fdb.splitlines() if line.startswith(s.port["mac_address"])]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_dataplane_bench([dataclasses.replace(KVNET_VF, observe=fail)], sizes=(64,), seconds=0.5, repeats=1,
                            ping_count=10, ns_prefix=PREFIX)
    assert seen["fdb"] and all(f"dev {pf_peer(HOST)} " in line for line in seen["fdb"]), seen["fdb"]
    assert netns.list_with_prefix(n.prefix(seen["lab"])) == []
    assert not netns.exists(seen["receiver"]) and netns.list_with_prefix(PREFIX) == []
