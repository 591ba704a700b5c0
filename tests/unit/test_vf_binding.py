"""Direct ports are bound to a VF by the server, from the VFs the host's agent reported (through the API)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kvnet.client import Client
from kvnet.errors import Exhausted, InvalidInput
from kvnet.sriov.inventory import scan
from kvnet.sriov.report import host_report, vfs_from_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import sysfs_builder

PHYSNETS = {"physnet2": "p2p1"}


@pytest.fixture
def report(tmp_path: Path) -> dict:
    """What an agent on a host with an Intel 82576 (7 VFs on p2p1) sends: a fixture sysfs tree of a real NIC."""
    return host_report(scan(sysfs_builder.make("good_82576", tmp_path)), set(PHYSNETS.values()))


@pytest.fixture
def cloud_with_vfs(client: Client, report: dict) -> dict[str, str]:
    for host in ("cn1", "cn2"):
        client.create("hosts", {"name": host, "tunnel_ip": f"192.0.2.{host[-1]}", "physnets": PHYSNETS})
    client.heartbeat("cn1", {"pid": 1, "sriov": report})
    ext = client.create("networks", {"name": "ext", "network_type": "vlan", "physnet": "physnet2",
                                     "segmentation_id": 100})
    client.create("subnets", {"network_id": ext["id"], "cidr": "203.0.113.0/24"})
    flat = client.create("networks", {"name": "flat2", "network_type": "flat", "physnet": "physnet2"})
    return {"ext": ext["id"], "flat": flat["id"]}


def direct(client: Client, network_id: str, host: str | None = "cn1", **extra: object) -> dict:
    return client.create("ports", {"network_id": network_id, "vnic_type": "direct", "binding_host": host,
                                   **extra})


def test_report_lists_only_the_physnet_pfs_vfs(report: dict) -> None:
    assert [pf["name"] for pf in report["pfs"]] == ["p2p1"] and report["emulated"] is False
    vfs = vfs_from_report(report)
    assert [vf.index for vf in vfs] == list(range(7)) and vfs[0].address == "0000:03:10.0"
    assert vfs_from_report(None) == []


def test_binding_picks_the_lowest_free_vf_and_exhaustion_is_409(client: Client, cloud_with_vfs: dict) -> None:
    ports = [direct(client, cloud_with_vfs["ext"], name=f"p{i}") for i in range(7)]
    assert [p["binding_profile"]["vf_index"] for p in ports] == list(range(7))
    assert ports[0]["binding_profile"] == {"pci_slot": "0000:03:10.0", "pf": "p2p1", "vf_index": 0,
                                           "physical_network": "physnet2"}
    with pytest.raises(Exhausted) as exc:
        direct(client, cloud_with_vfs["flat"], name="p7")
    assert exc.value.status == 409
    assert "host cn1: no free VF on PF p2p1 for physnet physnet2 (all 7 usable VFs are in use)" in str(exc.value)
    assert client.list("ports", name="p7") == [], "a failed binding leaves no port behind"
    # Releasing a port frees its VF for the next one (which the agent will have reset meanwhile).
    client.delete("ports", ports[3]["id"])
    assert direct(client, cloud_with_vfs["flat"], name="p8")["binding_profile"]["vf_index"] == 3


def test_rebinding_keeps_moves_or_drops_the_vf(client: Client, cloud_with_vfs: dict) -> None:
    a = direct(client, cloud_with_vfs["ext"], binding_profile={"trusted": True})
    b = direct(client, cloud_with_vfs["ext"])
    assert (a["binding_profile"]["vf_index"], b["binding_profile"]["vf_index"]) == (0, 1)
    assert a["binding_profile"]["trusted"] is True, "keys the server does not own are kept"
    # An unrelated update keeps the VF, even if the client sends a stale or edited profile.
    a = client.update("ports", a["id"], {"name": "renamed", "binding_profile": {"trusted": True, "vf_index": 5}})
    assert a["binding_profile"]["vf_index"] == 0 and a["binding_profile"]["trusted"] is True
    # Unbinding releases it; VF 0 goes to the next port.
    a = client.update("ports", a["id"], {"binding_host": None})
    assert "pci_slot" not in a["binding_profile"] and a["binding_profile"] == {"trusted": True}
    assert direct(client, cloud_with_vfs["ext"])["binding_profile"]["vf_index"] == 0
    # Becoming a normal port drops the VF too.
    b = client.update("ports", b["id"], {"vnic_type": "normal"})
    assert b["binding_profile"] == {}


def test_unreported_host_overlay_network_and_unmapped_physnet_are_clear_errors(
        client: Client, cloud_with_vfs: dict) -> None:
    with pytest.raises(Exhausted, match="host cn2 has not reported any SR-IOV VFs"):
        direct(client, cloud_with_vfs["ext"], host="cn2")
    vx = client.create("networks", {"name": "tenant"})
    with pytest.raises(InvalidInput, match="needs a flat or vlan provider network; network tenant is vxlan"):
        direct(client, vx["id"])
    other = client.create("networks", {"name": "p3", "network_type": "flat", "physnet": "physnet3"})
    with pytest.raises(Exhausted, match="host cn1 has no interface for physnet physnet3"):
        direct(client, other["id"])
    # An unbound direct port is fine: it gets its VF when it is bound.
    port = direct(client, cloud_with_vfs["ext"], host=None)
    assert port["binding_profile"] == {}
    assert client.update("ports", port["id"], {"binding_host": "cn1"})["binding_profile"]["vf_index"] == 0
