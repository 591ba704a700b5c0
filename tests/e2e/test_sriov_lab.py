"""SR-IOV in the lab, end to end: server-side VF binding, the agent configuring and resetting VFs, and a
dual-NIC qemu guest (internal NIC on the VXLAN overlay, external NIC on a VF of a VLAN provider network).

The PF and its VFs are the lab's emulation (kvnet/lab/sriov.py, kvnet/sriov/emulated.py): VFs are macvlan
endpoints on a veth "PF" into the external segment; MAC, link state and rate are real kernel state, the
VLAN is recorded only (no 802.1Q devices here). Everything above the VFDriver is the production code.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kvnet.client import Client
from kvnet.errors import Exhausted
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, boot_vm, wait_port_active
from kvnet.lab.lab import Lab
from kvnet.lab.probe import ping_until
from kvnet.lab.procs import POLL_S
from kvnet.lab.qemu_vm import GuestNic, boot_guest, guest_exec, guest_ping, qemu_available
from kvnet.lab.sriov import PF_NAME, config_path, enable_emulated_sriov, pf_peer, wait_reported
from kvnet.lab.testing import running_lab
from kvnet.lab.vm import delete_vm
from kvnet.sriov.emulated import endpoint_name
from kvnet.sriov.source import EmulatedSriov
from kvnet.sriov.vf import RESET, VFDriver, VFSettings
from kvnet.sys.cmd import CommandError, run, run_json

pytestmark = pytest.mark.root
NUM_VFS = 2


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(hosts=2, control_plane=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def cloud(lab: Lab, client: Client) -> dict[str, Any]:
    enable_emulated_sriov(lab, ["h1"], num_vfs=NUM_VFS, client=client)
    report = wait_reported(client, "h1")
    assert report["emulated"] and [len(pf["vfs"]) for pf in report["pfs"]] == [NUM_VFS]
    ext = client.create("networks", {"name": "ext", "network_type": "vlan", "physnet": "physnet2",
                                     "segmentation_id": 100})
    ext_sub = client.create("subnets", {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                        "gateway_ip": "203.0.113.1"})
    flat = client.create("networks", {"name": "flat2", "network_type": "flat", "physnet": "physnet2"})
    client.create("subnets", {"network_id": flat["id"], "cidr": "198.51.100.0/24"})
    tenant = client.create("networks", {"name": "tenant"})
    tenant_sub = client.create("subnets", {"network_id": tenant["id"], "cidr": "10.30.0.0/24"})
    qos = client.create("qospolicies", {"name": "ext50", "max_kbps": 50_000})
    return {"ext": ext, "ext_sub": ext_sub, "flat": flat, "tenant": tenant, "tenant_sub": tenant_sub, "qos": qos}


@pytest.fixture(scope="module")
def vf_driver(lab: Lab, cloud: dict[str, Any]) -> VFDriver:
    """The same driver the agent uses, to read VFs back from the kernel (and the emulation's state file)."""
    return EmulatedSriov(config_path(lab.dir, "h1")).driver(PF_NAME)


def read_until(driver: VFDriver, vf_index: int, want: VFSettings, deadline_s: float = 10.0) -> VFSettings | None:
    """Poll the VF until it reads `want`; the agent may be rewriting it meanwhile (a read can then fail)."""
    end = time.monotonic() + deadline_s
    have = None
    while time.monotonic() < end:
        with contextlib.suppress(CommandError):
            if (have := driver.read(PF_NAME, vf_index)) == want:
                break
        time.sleep(POLL_S)
    return have


def endpoint(lab: Lab, vf_index: int) -> dict[str, Any] | None:
    links = run_json(["ip", "-j", "link", "show"], netns=n.host_ns(lab.name, "h1"))
    return next((link for link in links if link["ifname"] == endpoint_name(PF_NAME, vf_index)), None)


def test_vf_is_configured_reset_on_release_and_reused_clean(lab: Lab, client: Client, cloud: dict[str, Any],
                                                           vf_driver: VFDriver) -> None:
    a = client.create("ports", {"name": "va", "network_id": cloud["ext"]["id"], "vnic_type": "direct",
                                "binding_host": "h1", "qos_policy_id": cloud["qos"]["id"]})
    assert a["binding_profile"]["vf_index"] == 0 and a["binding_profile"]["pf"] == PF_NAME
    wait_port_active(client, a["id"], 10)
    want_a = VFSettings(mac=a["mac_address"], vlan=100, spoofchk=True, trust=False, max_tx_rate_mbps=50)
    assert read_until(vf_driver, 0, want_a) == want_a
    link = endpoint(lab, 0)
    assert link is not None and link["address"] == a["mac_address"], "the VF carries the port's MAC in the kernel"

    client.delete("ports", a["id"])
    assert read_until(vf_driver, 0, RESET) == RESET, "a released VF goes back to MAC 0, VLAN 0, rate 0"
    assert endpoint(lab, 0) is None

    b = client.create("ports", {"name": "vb", "network_id": cloud["flat"]["id"], "vnic_type": "direct",
                                "binding_host": "h1"})
    assert b["binding_profile"]["vf_index"] == 0, "the freed VF is the next one handed out"
    wait_port_active(client, b["id"], 10)
    want_b = VFSettings(mac=b["mac_address"], vlan=0, max_tx_rate_mbps=0)
    assert read_until(vf_driver, 0, want_b) == want_b, "no MAC, VLAN or rate of the previous tenant left"
    qdiscs = run_json(["tc", "-j", "qdisc", "show", "dev", endpoint_name(PF_NAME, 0)], netns=n.host_ns(lab.name, "h1"))
    assert all(q["kind"] != "tbf" for q in qdiscs), qdiscs

    c = client.create("ports", {"name": "vc", "network_id": cloud["flat"]["id"], "vnic_type": "direct",
                                "binding_host": "h1"})
    assert c["binding_profile"]["vf_index"] == 1
    with pytest.raises(Exhausted, match=f"host h1: no free VF on PF {PF_NAME} for physnet physnet2"):
        client.create("ports", {"name": "vd", "network_id": cloud["flat"]["id"], "vnic_type": "direct",
                                "binding_host": "h1"})
    for port in (b, c):
        client.delete("ports", port["id"])
    for index in range(NUM_VFS):
        assert read_until(vf_driver, index, RESET) == RESET


def test_dual_nic_guest_reaches_outside_through_its_vf_and_peers_through_the_overlay(
        lab: Lab, client: Client, cloud: dict[str, Any]) -> None:
    reason = qemu_available()
    if reason:
        pytest.skip(reason)
    peer = DemoVM("peer", "h2", "tenant", "10.30.0.20")
    boot_vm(lab, client, peer)
    internal = client.create("ports", {"name": "dual-int", "network_id": cloud["tenant"]["id"],
                                       "binding_host": "h1", "fixed_ips": [{"ip_address": "10.30.0.10"}]})
    external = client.create("ports", {"name": "dual-ext", "network_id": cloud["ext"]["id"], "vnic_type": "direct",
                                       "binding_host": "h1", "qos_policy_id": cloud["qos"]["id"]})
    ext_ip = external["fixed_ips"][0]["ip_address"]
    try:
        rec = boot_guest(lab, client, "dual", "h1", [
            GuestNic(internal, cloud["tenant_sub"], cloud["tenant"]["mtu"], default_route=False),
            GuestNic(external, cloud["ext_sub"], cloud["ext"]["mtu"], default_route=True)])
        routes = guest_exec(lab, "dual", "ip route show default", check=True).stdout
        assert "default via 203.0.113.1 dev eth1" in routes, routes
        assert guest_ping(lab, "dual", "203.0.113.1", count=3), "the external namespace through the VF"
        assert guest_ping(lab, "dual", peer.ip, count=3), "the peer on h2 through the overlay"
        assert ping_until(lab, peer.name, "10.30.0.10", 5) is not None
        # The external segment learned the guest's external MAC on h1's PF port, not on its bridged ex0.
        fdb = run(["bridge", "fdb", "show", "br", n.EXT_BRIDGE], netns=n.ext_ns(lab.name)).stdout
        mine = [line for line in fdb.splitlines() if line.startswith(external["mac_address"])]
        assert mine and all(f"dev {pf_peer('h1')} " in line for line in mine), fdb
        # The internal NIC is on the tenant bridge; the external one is not bridged at all.
        links = run_json(["ip", "-j", "link", "show"], netns=n.host_ns(lab.name, "h1"))
        taps = {link["ifname"]: link for link in links}
        assert taps[rec["devices"][0]].get("master", "").startswith("kvb-")
        assert "master" not in taps[rec["devices"][1]]
        print(f"dual-NIC guest: {rec['accel']}, network up {rec['boot_s']} s after resume; external IP {ext_ip}")
    finally:
        delete_vm(lab, "dual")
        delete_vm(lab, peer.name)
        for port in (internal, external, client.find("ports", peer.name)):
            client.delete("ports", port["id"])
