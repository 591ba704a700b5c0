"""The agent's VF side: compile_vfs (pure) and VFReconciler's level-triggered configure/reset decisions.

The reconciler runs here against `InMemoryNic`, an in-memory stand-in for an SR-IOV NIC's VF table
(this machine has none); the kernel-facing drivers are tested in test_sriov_vf.py and the e2e tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kvnet.agent.model import CloudModel
from kvnet.agent.vf import VFAssignment, VFReconciler, compile_vfs
from kvnet.model.resources import CloudConfig, Host, Network, Port, QoSPolicy
from kvnet.sriov.inventory import Inventory, scan
from kvnet.sriov.vf import RESET, VFSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import sysfs_builder

MAC = "fa:16:3e:00:00:09"


def profile(index: int) -> dict:
    return {"pci_slot": f"0000:03:10.{index}", "pf": "p2p1", "vf_index": index, "physical_network": "physnet2"}


def model_with(*ports: Port, qos: QoSPolicy | None = None) -> CloudModel:
    vlan = Network(id="vlan", network_type="vlan", physnet="physnet2", segmentation_id=120)
    flat = Network(id="flat", network_type="flat", physnet="physnet2")
    host = Host(name="cn1", tunnel_ip="192.0.2.1", physnets={"physnet2": "p2p1"})
    return CloudModel.from_resources([CloudConfig(), host, vlan, flat, *ports, *([qos] if qos else [])])


def test_compile_vfs_settings_per_port() -> None:
    qos = QoSPolicy(id="q", max_kbps=250_000)
    a = Port(id="a", network_id="vlan", mac_address=MAC, vnic_type="direct", binding_host="cn1",
             binding_profile=profile(2), qos_policy_id="q")
    b = Port(id="b", network_id="flat", mac_address="fa:16:3e:00:00:0a", vnic_type="direct", binding_host="cn1",
             binding_profile=profile(0), port_security_enabled=False)
    elsewhere = Port(id="c", network_id="flat", mac_address="fa:16:3e:00:00:0b", vnic_type="direct",
                     binding_host="cn2", binding_profile=profile(1))
    unscheduled = Port(id="d", network_id="flat", mac_address="fa:16:3e:00:00:0c", vnic_type="direct",
                       binding_host="cn1")
    normal = Port(id="e", network_id="flat", mac_address="fa:16:3e:00:00:0d", binding_host="cn1")
    got = compile_vfs("cn1", model_with(a, b, elsewhere, unscheduled, normal, qos=qos))
    assert [(x.pf, x.vf_index, x.port_id) for x in got] == [("p2p1", 0, "b"), ("p2p1", 2, "a")]
    assert got[1].settings == VFSettings(mac=MAC, vlan=120, spoofchk=True, trust=False, max_tx_rate_mbps=250)
    assert got[0].settings == VFSettings(mac="fa:16:3e:00:00:0a", vlan=0, spoofchk=False)  # flat: VLAN 0


class InMemoryNic:
    """An SR-IOV NIC's VF table in memory (inventory from a fixture sysfs tree of an Intel 82576)."""

    emulated = True

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self.vfs: dict[tuple[str, int], VFSettings] = {}
        self.writes: list[tuple[str, str, int]] = []

    def inventory(self) -> Inventory:
        return self._inventory

    def driver(self, pf: str) -> InMemoryNic:
        return self

    def read(self, pf: str, vf_index: int) -> VFSettings:
        return self.vfs.get((pf, vf_index), RESET)

    def configure(self, pf: str, vf_index: int, settings: VFSettings) -> None:
        self.writes.append(("configure", pf, vf_index))
        self.vfs[(pf, vf_index)] = settings

    def reset(self, pf: str, vf_index: int) -> None:
        self.writes.append(("reset", pf, vf_index))
        self.vfs.pop((pf, vf_index), None)


@pytest.fixture
def nic(tmp_path: Path) -> InMemoryNic:
    return InMemoryNic(scan(sysfs_builder.make("good_82576", tmp_path)))


def test_reconcile_configures_resets_and_then_only_reads(nic: InMemoryNic) -> None:
    want = VFSettings(mac=MAC, vlan=100, max_tx_rate_mbps=50)
    nic.vfs[("p2p1", 6)] = VFSettings(mac="fa:16:3e:aa:bb:06", vlan=100)  # left over by a previous tenant
    rec = VFReconciler(nic)
    result = rec.reconcile((VFAssignment("p2p1", 1, "port-a", "0000:03:10.1", want),), {"p2p1"})
    assert result.configured == ["p2p1/1"] and result.reset == ["p2p1/6"] and result.errors == []
    assert result.status == {"port-a": "ACTIVE"}
    assert nic.vfs == {("p2p1", 1): want}
    assert [pf["name"] for pf in result.report["pfs"]] == ["p2p1"] and len(result.report["pfs"][0]["vfs"]) == 7
    nic.writes.clear()
    again = rec.reconcile((VFAssignment("p2p1", 1, "port-a", "0000:03:10.1", want),), {"p2p1"})
    assert nic.writes == [] and again.status == {"port-a": "ACTIVE"}, "steady state: reads only"
    # Released: the VF goes back to RESET (MAC zero, VLAN 0, rate 0).
    rec.reconcile((), {"p2p1"})
    assert nic.writes == [("reset", "p2p1", 1)] and nic.read("p2p1", 1) == RESET


def test_reconcile_leaves_unmapped_pfs_alone_and_reports_missing_vfs(nic: InMemoryNic) -> None:
    nic.vfs[("p2p1", 3)] = VFSettings(mac="fa:16:3e:aa:bb:03")
    result = VFReconciler(nic).reconcile((VFAssignment("p2p1", 9, "port-z", "0000:03:11.1", RESET),), set())
    assert nic.writes == [] and result.report["pfs"] == [], "no physnet maps p2p1 on this host: not kvnet's"
    result = VFReconciler(nic).reconcile((VFAssignment("p2p1", 9, "port-z", "0000:03:11.1", RESET),), {"p2p1"})
    assert result.status == {"port-z": "DOWN"} and result.errors == ["port port-z: this host has no VF 9 on p2p1"]
