"""The OVS driver's pure parts: local VLANs, OVSDB rows, flows, cookies, diff, parsing ovs-ofctl output."""

from __future__ import annotations

import re
from dataclasses import replace

from kvnet.dataplane.ovs import host_isolation
from kvnet.dataplane.ovs.diff import diff_db, diff_flows
from kvnet.dataplane.ovs.flows import ARP, CLASSIFY, FLOOD, L2, render_flows
from kvnet.dataplane.ovs.openflow import bundle_lines, parse_flow
from kvnet.dataplane.ovs.render import assign_lvids, render_db
from kvnet.dataplane.ovs.state import COOKIE_MARK, COOKIE_SHIFT, INT_BRIDGE, ObservedDb, ObservedFlow
from kvnet.plan import HostPlan, NetworkPlan, PortPlan, RemoteEndpoint

VX = NetworkPlan("net-vx", "vxlan", 1001, 1450, "kvb-vx", "kvx-vx", None, flood_to=("192.0.2.2", "192.0.2.3"),
                 remotes=(RemoteEndpoint("fa:16:3e:00:00:02", ("10.0.0.2",), "192.0.2.2"),),
                 arp_entries=(("10.0.0.2", "fa:16:3e:00:00:02"),))
VL = NetworkPlan("net-vl", "vlan", 101, 1500, "kvb-vl", None, "ph0")
PORTS = (PortPlan("p1", "net-vx", "fa:16:3e:00:00:01", ("10.0.0.1",), "kvt-p1", 1450),
         PortPlan("p2", "net-vl", "fa:16:3e:00:00:09", ("10.1.0.1",), "kvt-p2", 1500))
PLAN = HostPlan("h1", "192.0.2.1", True, True, (VX, VL), PORTS)
OFPORTS = {"kvt-p1": 5, "kvt-p2": 6, "kv-vxlan": 1, "kvpi-ph0": 2, "kvpp-ph0": 1, "ph0": 2}


def test_local_vlans_survive_and_new_networks_take_the_lowest_free_one() -> None:
    assert assign_lvids(PLAN, {}) == {"net-vx": 1, "net-vl": 2}
    assert assign_lvids(PLAN, {"net-vl": 1, "gone": 7}) == {"net-vl": 1, "net-vx": 2}


def test_rows_of_a_vxlan_and_a_vlan_network() -> None:
    db = render_db(PLAN, {"net-vx": 1, "net-vl": 2}, "netdev")
    assert set(db.bridges) == {INT_BRIDGE, "kvp-ph0"}
    assert db.ports["kvt-p1"].tag == 1 and db.ports["kvt-p1"].mtu_request == 1450
    assert dict(db.ports["kv-vxlan"].options) == {"key": "flow", "remote_ip": "flow", "local_ip": "192.0.2.1",
                                                  "dst_port": "4789"}
    assert db.ports["ph0"].bridge == "kvp-ph0" and dict(db.ports["kvpi-ph0"].options) == {"peer": "kvpp-ph0"}
    assert render_db(replace(PLAN, networks=(), ports=()), {}, "netdev").bridges == {}


def test_flows_cover_every_table_and_leave_out_ports_without_a_device() -> None:
    flows = render_flows(PLAN, {"net-vx": 1, "net-vl": 2}, OFPORTS)
    tables = {(f.bridge, f.table) for f in flows}
    assert {(INT_BRIDGE, t) for t in (CLASSIFY, ARP, L2, FLOOD)} | {("kvp-ph0", 0)} <= tables
    flood = next(f for f in flows if f.table == FLOOD and f.match == "reg6=0x1,reg7=0")
    assert flood.actions == ("output:5,set_field:0x3e9->tun_id,set_field:192.0.2.2->tun_dst,output:1,"
                             "set_field:192.0.2.3->tun_dst,output:1")
    to_kv_int = [f for f in flows if f.bridge == "kvp-ph0" and f.match == "in_port=2,dl_vlan=101"]
    assert [f.actions for f in to_kv_int] == ["set_field:4098->vlan_vid,output:1"]  # provider 101 -> lvid 2
    without_device = render_flows(PLAN, {"net-vx": 1, "net-vl": 2}, {**OFPORTS, "kvt-p1": -1})
    assert not any("in_port=5" in f.match or "output:5" in f.actions for f in without_device)


def test_cookie_names_the_content_and_carries_the_mark() -> None:
    flows = render_flows(PLAN, {"net-vx": 1, "net-vl": 2}, OFPORTS)
    assert len({f.cookie for f in flows}) == len(flows)
    assert all(f.cookie >> COOKIE_SHIFT == COOKIE_MARK for f in flows)
    again = render_flows(PLAN, {"net-vx": 1, "net-vl": 2}, OFPORTS)
    assert [f.cookie for f in again] == [f.cookie for f in flows]
    moved = render_flows(PLAN, {"net-vx": 1, "net-vl": 2}, {**OFPORTS, "kvt-p1": 7})
    assert {f.cookie for f in moved} != {f.cookie for f in flows}


def test_flow_diff_is_by_cookie_and_deletes_come_first() -> None:
    flows = render_flows(PLAN, {"net-vx": 1, "net-vl": 2}, OFPORTS)
    observed = [ObservedFlow(f.bridge, f.cookie, f.table, f.priority, f.match) for f in flows]
    assert diff_flows(flows, observed).count("add") == diff_flows(flows, observed).count("delete") == 0
    stray = ObservedFlow(INT_BRIDGE, (COOKIE_MARK << COOKIE_SHIFT) | 1, 20, 5, "ip")
    changes = diff_flows(flows[1:], [*observed, stray])
    assert changes.count("add") == 0 and changes.count("delete") == 2
    lines = bundle_lines(flows[:1], changes.delete[INT_BRIDGE])
    assert lines[0].startswith("delete_strict ") and lines[-1].startswith("add cookie=")


def test_db_diff_adds_changes_and_deletes_only_owned_rows() -> None:
    desired = render_db(PLAN, {"net-vx": 1, "net-vl": 2}, "netdev")
    assert len(diff_db(desired, ObservedDb()).port_add) == len(desired.ports)
    seen = ObservedDb(dict(desired.bridges), dict(desired.ports))
    assert diff_db(desired, seen).empty
    seen.ports["kvt-p1"] = replace(desired.ports["kvt-p1"], tag=9)
    seen.ports["kvt-old"] = replace(desired.ports["kvt-p1"], name="kvt-old")
    seen.ports["foreign"] = replace(desired.ports["kvt-p1"], name="foreign", external_ids=())
    changes = diff_db(desired, seen)
    assert [p.name for p in changes.port_change] == ["kvt-p1"] and changes.port_del == ["kvt-old"]


def test_parse_what_ovs_ofctl_prints() -> None:
    line = (" cookie=0x6b762e7f86d0cc7f, table=10, priority=100,arp,reg6=0x1,arp_tpa=10.0.0.2,arp_op=1 "
            "actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],IN_PORT")
    assert parse_flow("b", line) == ObservedFlow("b", 0x6B762E7F86D0CC7F, 10, 100, "arp,reg6=0x1,arp_tpa=10.0.0.2,"
                                                                                   "arp_op=1")
    assert parse_flow("b", " cookie=0x1, priority=0 actions=drop") == ObservedFlow("b", 1, 0, 0, "")
    assert parse_flow("b", " cookie=0x1, table=3, ip actions=drop") == ObservedFlow("b", 1, 3, 32768, "ip")
    with_stats = " cookie=0x1, duration=2.1s, table=42, n_packets=3, n_bytes=180, priority=50,ip,reg5=0x4 actions=drop"
    assert parse_flow("b", with_stats) == ObservedFlow("b", 1, 42, 50, "ip,reg5=0x4")
    assert parse_flow("b", " cookie=0x2, table=42, priority=50,conj_id=7,ip actions=goto_table:43") == ObservedFlow(
        "b", 2, 42, 50, "conj_id=7,ip")


def test_host_isolation_wants_kernel_devices_only_and_changes_single_chains() -> None:
    db = render_db(PLAN, {"net-vx": 1, "net-vl": 2}, "netdev")
    assert host_isolation.wanted(db, "netdev", OFPORTS) == {"kvt-p1", "kvt-p2", "ph0"}  # not kv-vxlan, patches
    assert host_isolation.wanted(db, "netdev", {**OFPORTS, "kvt-p1": -1}) == {"kvt-p2", "ph0"}  # not opened yet
    assert host_isolation.wanted(db, "system", OFPORTS) == set()
    changes = host_isolation.diff({"kvt-p1", "ph0"}, {"ph0", "kvt-gone"})
    assert (changes.add, changes.delete, changes.drop_table) == (("kvt-p1",), ("kvt-gone",), False)
    script = host_isolation.script(changes)
    assert 'add chain netdev kvnet_ovs in-kvt-p1 { type filter hook ingress device "kvt-p1"' in script
    assert "policy drop;" in script and "delete chain netdev kvnet_ovs in-kvt-gone" in script
    assert "ph0" not in script  # its chain is already there: untouched
    assert host_isolation.diff({"ph0"}, {"ph0"}).empty
    assert host_isolation.diff(set(), None).empty
    assert host_isolation.script(host_isolation.diff(set(), set())) == "delete table netdev kvnet_ovs\n"


def test_no_ovs_bridge_learns_macs() -> None:
    """kv-int and the physnet bridges forward by kvnet's flows only: no NORMAL action, no learn action,
    so a VM sending from random source MACs fills no MAC table (OVS's mac-table-size never applies)."""
    flat = replace(VL, network_id="net-fl", network_type="flat", segmentation_id=None)
    plan = replace(PLAN, networks=(*PLAN.networks, flat))
    flows = render_flows(plan, {"net-vx": 1, "net-vl": 2, "net-fl": 3}, OFPORTS)
    assert {f.bridge for f in flows} == {"kv-int", "kvp-ph0"}
    learning = [f for f in flows if re.search(r"\b(normal|learn)\b", f.actions, re.IGNORECASE)]
    assert learning == []
