"""The Linux driver on a single namespace: flat networks and partial failures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from linux_fixtures import PREFIX

from kvnet.dataplane.linux import LinuxDriver
from kvnet.dataplane.linux.observe import observe
from kvnet.plan import HostPlan, NetworkPlan, RemoteEndpoint
from kvnet.sys import netns

pytestmark = pytest.mark.root


@pytest.fixture
def host() -> Iterator[str]:
    """A host namespace with a veth `phys0` standing in for a physnet NIC (peer in a second namespace)."""
    run_id = uuid.uuid4().hex[:6]
    name, wire = f"{PREFIX}{run_id}-host", f"{PREFIX}{run_id}-wire"
    try:
        netns.add(name)
        netns.add(wire)
        netns.add_veth("phys0", name, "peer0", wire)
        yield name
    finally:
        netns.delete_with_prefix(f"{PREFIX}{run_id}")


def test_flat_network_enslaves_the_physnet_and_releases_it(host: str) -> None:
    flat = NetworkPlan("f1", "flat", None, 1500, "kvb-f1", None, "phys0")
    plan = HostPlan("h", "192.0.2.1", True, True, (flat,))
    assert LinuxDriver(host).reconcile(plan).ok
    assert observe(host).links["phys0"].master == "kvb-f1"
    assert LinuxDriver(host).reconcile(plan).total_changes == 0
    result = LinuxDriver(host).reconcile(replace(plan, networks=()))
    assert result.removed["port"] == 1 and result.removed["link"] == 1
    links = observe(host).links
    assert "kvb-f1" not in links and links["phys0"].master is None  # the NIC is not kvnet's to delete


def test_one_failing_entry_neither_hides_nor_blocks_the_others(host: str) -> None:
    good = [RemoteEndpoint(f"fa:16:3e:00:00:{i:02x}", (f"10.0.0.{i}",), "192.0.2.2") for i in range(2, 6)]
    net = NetworkPlan("v1", "vxlan", 1001, 1450, "kvb-v1", "kvx-v1", None, flood_to=("192.0.2.2",),
                      remotes=tuple(good),
                      # a 3-byte link-layer address: the kernel rejects this one line (EINVAL)
                      arp_entries=(("10.0.0.9", "fa:16:3e"),
                                   *((r.ips[0], r.mac) for r in good)))
    plan = HostPlan("h", "192.0.2.1", True, True, (net,))
    first = LinuxDriver(host).reconcile(plan)
    assert not first.ok and "Invalid link address" in first.errors[0]
    seen = observe(host)
    assert {n.ip for n in seen.neigh} == {r.ips[0] for r in good}  # the rest went in
    assert len([f for f in seen.fdb if not f.flood]) == len(good)  # and the later FDB batch too
    again = LinuxDriver(host).reconcile(plan)  # only the failed change is retried
    assert not again.ok and {kind: n for kind, n in again.added.items() if n} == {"neigh": 1}
