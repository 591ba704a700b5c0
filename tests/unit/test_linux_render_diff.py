"""render and diff of the Linux driver: pure functions, no root."""

from __future__ import annotations

from dataclasses import replace

from kvnet.dataplane.linux.apply import batches
from kvnet.dataplane.linux.diff import diff
from kvnet.dataplane.linux.render import render
from kvnet.dataplane.linux.state import FLOOD_MAC, Fdb, Link, Neigh, ObservedState
from kvnet.plan import HostPlan, NetworkPlan, PortPlan, RemoteEndpoint

NET = NetworkPlan(
    "n1", "vxlan", 1001, 1450, "kvb-n1", "kvx-n1", None, flood_to=("192.0.2.2", "192.0.2.3"),
    remotes=(RemoteEndpoint("fa:16:3e:00:00:02", ("10.0.0.2",), "192.0.2.2"),),
    arp_entries=(("10.0.0.2", "fa:16:3e:00:00:02"),))
PORT = PortPlan("p1", "n1", "fa:16:3e:00:00:01", ("10.0.0.1",), "kvt-p1", 1450)
PLAN = HostPlan("h1", "192.0.2.1", True, True, (NET,), (PORT,))


def as_observed(plan: HostPlan, *, port_device: bool = True) -> ObservedState:
    """What the kernel would report after a perfect apply of `plan`."""
    want = render(plan)
    links = dict(want.links)
    if port_device:
        links.update({d: Link(d, "veth", None, a.mtu, a.master, port=a.port) for d, a in want.attachments.items()})
    return ObservedState(links, set(want.fdb), set(want.neigh))


def test_render_vxlan_network_with_l2pop_and_arp_responder() -> None:
    state = render(PLAN)
    vxlan = state.links["kvx-n1"]
    assert vxlan.master == "kvb-n1" and vxlan.mtu == 1450 and vxlan.alias == "kvnet:vxlan:n1"
    assert vxlan.vxlan is not None and (vxlan.vxlan.vni, vxlan.vxlan.local, vxlan.vxlan.dstport) == (
        1001, "192.0.2.1", 4789)
    assert not vxlan.vxlan.learning and vxlan.vxlan.proxy
    assert vxlan.port is not None and not vxlan.port.learning
    assert state.fdb == {Fdb("kvx-n1", FLOOD_MAC, "192.0.2.2"), Fdb("kvx-n1", FLOOD_MAC, "192.0.2.3"),
                         Fdb("kvx-n1", "fa:16:3e:00:00:02", "192.0.2.2")}
    assert state.neigh == {Neigh("kvx-n1", "10.0.0.2", "fa:16:3e:00:00:02")}
    assert state.attachments["kvt-p1"].master == "kvb-n1"


def test_render_without_l2pop_learns_and_floods_only() -> None:
    state = render(replace(PLAN, l2_population=False, arp_responder=False))
    vxlan = state.links["kvx-n1"].vxlan
    assert vxlan is not None and vxlan.learning and not vxlan.proxy
    assert all(f.flood for f in state.fdb) and not state.neigh


def test_render_bridge_suppress_puts_neighbours_on_the_bridge() -> None:
    state = render(PLAN, "bridge_suppress")
    assert state.neigh == {Neigh("kvb-n1", "10.0.0.2", "fa:16:3e:00:00:02")}
    port = state.links["kvx-n1"].port
    assert port is not None and port.neigh_suppress


def test_render_flat_enslaves_physnet_without_touching_its_mtu() -> None:
    flat = NetworkPlan("n2", "flat", None, 1500, "kvb-n2", None, "eth1")
    state = render(HostPlan("h1", "192.0.2.1", True, True, (flat,)))
    assert set(state.links) == {"kvb-n2"}
    assert state.attachments["eth1"].master == "kvb-n2" and state.attachments["eth1"].mtu is None


def test_diff_of_applied_state_is_empty_and_missing_device_reported() -> None:
    assert len(diff(render(PLAN), as_observed(PLAN))) == 0
    changes = diff(render(PLAN), as_observed(PLAN, port_device=False))
    assert len(changes) == 0 and [a.device for a in changes.missing] == ["kvt-p1"]


def test_diff_from_empty_host_adds_everything_in_parent_to_child_order() -> None:
    changes = diff(render(PLAN), as_observed(replace(PLAN, networks=(), ports=())))
    counts = changes.counts()
    assert counts["added"] == {"link": 2, "port": 0, "fdb": 3, "neigh": 1}
    tools = [name for name, _ in batches(changes)]
    assert tools == ["ip", "bridge"]  # links + neighbours first, FDB on the created VXLAN device last
    ip_lines = batches(changes)[0][1]
    assert ip_lines.index("link add name kvb-n1 type bridge") < next(
        i for i, line in enumerate(ip_lines) if line.startswith("link set dev kvx-n1 alias"))


def test_diff_repairs_stray_missing_and_moved_entries() -> None:
    observed = as_observed(PLAN)
    observed.fdb.discard(Fdb("kvx-n1", FLOOD_MAC, "192.0.2.3"))
    observed.fdb.add(Fdb("kvx-n1", FLOOD_MAC, "192.0.2.99"))
    observed.fdb.discard(Fdb("kvx-n1", "fa:16:3e:00:00:02", "192.0.2.2"))
    observed.fdb.add(Fdb("kvx-n1", "fa:16:3e:00:00:02", "192.0.2.7"))
    observed.neigh = {Neigh("kvx-n1", "10.0.0.2", "fa:16:3e:ff:ff:ff"), Neigh("kvx-n1", "10.0.0.9", "x")}
    changes = diff(render(PLAN), observed)
    assert changes.fdb_add == [Fdb("kvx-n1", FLOOD_MAC, "192.0.2.3")]
    assert changes.fdb_del == [Fdb("kvx-n1", FLOOD_MAC, "192.0.2.99")]
    assert changes.fdb_change == [Fdb("kvx-n1", "fa:16:3e:00:00:02", "192.0.2.2")]
    assert changes.neigh_change == [Neigh("kvx-n1", "10.0.0.2", "fa:16:3e:00:00:02")]
    assert changes.neigh_del == [Neigh("kvx-n1", "10.0.0.9", "x")]


def test_diff_removed_network_deletes_owned_links_and_detaches_ports_only() -> None:
    observed = as_observed(PLAN)
    observed.links["br-foreign"] = Link("br-foreign", "bridge")
    observed.links["kvb-noalias"] = Link("kvb-noalias", "bridge")
    observed.fdb.add(Fdb("br-foreign", "02:00:00:00:00:01", "192.0.2.9"))
    observed.neigh.add(Neigh("br-foreign", "198.51.100.1", "02:00:00:00:00:02"))
    changes = diff(render(replace(PLAN, networks=(), ports=())), observed)
    assert sorted(changes.link_del) == ["kvb-n1", "kvx-n1"]
    assert changes.detach == ["kvt-p1"]
    # Entries on the deleted links die with them; the foreign ones are not kvnet's to delete.
    assert not changes.fdb_del and not changes.neigh_del


def test_diff_recreates_vxlan_whose_fixed_settings_changed() -> None:
    moved = replace(PLAN, tunnel_ip="192.0.2.11")
    changes = diff(render(moved), as_observed(PLAN))
    assert changes.link_del == ["kvx-n1"] and [link.name for link in changes.link_add] == ["kvx-n1"]
    assert len(changes.fdb_add) == 3 and not changes.fdb_del  # re-added on the new device


def test_diff_never_takes_over_a_foreign_link_with_a_desired_name() -> None:
    observed = as_observed(replace(PLAN, networks=(), ports=()))
    observed.links["kvb-n1"] = Link("kvb-n1", "bridge", alias=None)
    changes = diff(render(PLAN), observed)
    assert changes.conflicts == ["kvb-n1"] and "kvb-n1" not in changes.link_del
