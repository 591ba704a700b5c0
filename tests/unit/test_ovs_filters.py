"""The OVS port filter's flows, rendered from plans (pure): where a filtered port's frames go, what it may
send, its rules with remote groups as conjunctions, and which flows a change touches."""

from __future__ import annotations

import random
from dataclasses import replace

from kvnet.dataplane.ovs import filters
from kvnet.dataplane.ovs.diff import diff_flows
from kvnet.dataplane.ovs.filter_rules import conj_ids, port_masks, rule_matches, rule_set, rule_set_ids
from kvnet.dataplane.ovs.flows import render_flows
from kvnet.dataplane.ovs.state import Flow, ObservedFlow
from kvnet.dataplane.ovs.tables import (
    ARP,
    CLASSIFY,
    EGRESS_RULES,
    EGRESS_SPOOF,
    FLOOD,
    INGRESS,
    INGRESS_RULES,
    L2,
    REDIRECT,
)
from kvnet.plan import HostPlan, NetworkPlan, PortPlan
from kvnet.plan.security import AddressSet, PortFilter, RuleMatch

NET = NetworkPlan("net-a", "vxlan", 1001, 1450, "kvb-a", "kvx-a", None, flood_to=("192.0.2.2",))
WEB, OPEN = (PortPlan(f"p{i}", "net-a", f"fa:16:3e:00:00:0{i}", (f"10.0.0.{i}",), f"kvt-p{i}", 1450) for i in (1, 2))
EGRESS_ALL = RuleMatch("egress", "IPv4")
SSH = RuleMatch("ingress", "IPv4", 6, 22, 22)
DB_FROM_WEB = RuleMatch("ingress", "IPv4", 6, 5432, 5432, remote_group="g-web")
WEB_FILTER = PortFilter("p1", "kvt-p1", "net-a", 42, WEB.mac,
                        (("10.0.0.1/32", WEB.mac), ("10.0.0.96/28", "fa:16:3e:00:00:99")),
                        (WEB.mac, "fa:16:3e:00:00:99"), (EGRESS_ALL, SSH, DB_FROM_WEB))
MEMBERS = AddressSet("g-web", ("10.0.0.1/32", "10.0.0.7/32"))
PLAN = HostPlan("h1", "192.0.2.1", True, True, (NET,), (WEB, OPEN), filters=(WEB_FILTER,), address_sets=(MEMBERS,))
OFPORTS = {"kvt-p1": 5, "kvt-p2": 6, "kv-vxlan": 1}


def set_id(flt: PortFilter, direction: str) -> int:
    return rule_set_ids([flt])[rule_set(flt, direction)]


WEB_IN = f"reg3={set_id(WEB_FILTER, 'ingress'):#x}"


def flows(plan: HostPlan = PLAN, ofports: dict[str, int] | None = None) -> list[Flow]:
    return render_flows(plan, {"net-a": 1}, ofports or OFPORTS)


def table(fl: list[Flow], number: int) -> list[Flow]:
    return [f for f in fl if f.table == number]


def observed(fl: list[Flow]) -> list[ObservedFlow]:
    return [ObservedFlow(f.bridge, f.cookie, f.table, f.priority, f.match) for f in fl]


def test_a_filtered_port_is_classified_into_its_filter_and_every_delivery_to_it_passes_ingress() -> None:
    fl = flows()
    classify = {f.match: f.actions for f in table(fl, CLASSIFY)}
    egress = set_id(WEB_FILTER, "egress")
    assert classify["in_port=5"].endswith(
        f"load:0x5->NXM_NX_REG5[],load:0x2a->NXM_NX_REG4[],load:{egress:#x}->NXM_NX_REG3[],goto_table:{EGRESS_SPOOF}")
    assert classify["in_port=6"].endswith(f"goto_table:{REDIRECT}")  # no port security: explicitly unfiltered
    into_filter = f"load:0x5->NXM_NX_REG5[],resubmit(,{INGRESS})"
    l2 = {f.match: f.actions for f in table(fl, L2)}
    assert l2[f"reg6=0x1,dl_dst={WEB.mac}"] == into_filter and l2[f"reg6=0x1,dl_dst={OPEN.mac}"] == "output:6"
    flood = [f.actions for f in table(fl, FLOOD) if f.priority == 100]
    assert flood and all(into_filter in a and "output:6" in a and "output:5" not in a for a in flood)
    arp_rest = [f.actions for f in table(fl, ARP) if f.priority == 50]
    assert arp_rest == [f"{into_filter},output:6"]
    ingress = {f.match for f in table(fl, INGRESS)}
    assert ingress == {"", f"reg5=0x5,dl_dst={WEB.mac}", "reg5=0x5,dl_dst=fa:16:3e:00:00:99",
                       f"reg5=0x5,dl_dst={filters.MULTICAST}"}  # unicast only for its MACs


def test_a_port_may_send_only_from_its_addresses_with_their_mac() -> None:
    spoof = {f.match: f.actions for f in table(flows(), EGRESS_SPOOF) if "in_port=5" in f.match}
    ip = [m for m in spoof if ",ip," in m]
    assert sorted(ip) == ["in_port=5,ip,dl_src=fa:16:3e:00:00:01,nw_src=10.0.0.1/32",
                          "in_port=5,ip,dl_src=fa:16:3e:00:00:99,nw_src=10.0.0.96/28"]
    assert all(spoof[m] == f"ct(zone=NXM_NX_REG4[0..15],table={EGRESS_RULES})" for m in ip)
    arp = sorted(m for m in spoof if ",arp," in m)
    assert arp == [f"in_port=5,arp,dl_src={mac},arp_sha={mac},arp_spa={cidr},arp_op={op}"
                   for cidr, mac in WEB_FILTER.sources for op in (1, 2)]
    assert all(spoof[m] == f"goto_table:{REDIRECT}" for m in arp)  # stateless, straight on
    assert not any("in_port=6" in f.match for f in table(flows(), EGRESS_SPOOF))
    fixed = {(f.priority, f.match): f.actions for f in table(flows(), EGRESS_SPOOF) if "in_port" not in f.match}
    assert fixed[(110, "udp,tp_src=67,tp_dst=68")] == fixed[(110, "icmp6,icmp_type=134")] == "drop"
    assert fixed[(110, "vlan_tci=0x1000/0x1000")] == fixed[(0, "")] == "drop"  # tagged, other ethertypes


def test_neighbour_discovery_only_from_own_addresses_and_advertising_only_them() -> None:
    ll, other = "fe80::f816:3eff:fe00:1/128", "fe80::f816:3eff:fe00:2/128"
    v6 = replace(WEB_FILTER, sources=(*WEB_FILTER.sources, (ll, WEB.mac)))
    spoof = {(f.priority, f.match): f.actions for f in table(flows(replace(PLAN, filters=(v6,))), EGRESS_SPOOF)}
    assert spoof[(100, f"in_port=5,icmp6,dl_src={WEB.mac},ipv6_src={ll},icmp_type=136,nd_target={ll}")] == (
        f"goto_table:{REDIRECT}")
    assert not any(f"nd_target={other}" in m for _, m in spoof)  # no advertisement for another's address
    assert spoof[(95, "icmp6,icmp_type=136")] == "drop"  # ... which falls here, above the IPv6 flows (90)
    assert spoof[(100, f"in_port=5,icmp6,dl_src={WEB.mac},ipv6_src=::,icmp_type=135")] == f"goto_table:{REDIRECT}"
    assert spoof[(90, f"in_port=5,ipv6,dl_src={WEB.mac},ipv6_src={ll}")].startswith("ct(")


def test_a_network_without_a_zone_gets_no_ip_at_all() -> None:
    plan = replace(PLAN, filters=(replace(WEB_FILTER, ct_zone=0, rules=()),))
    fl = flows(plan)
    assert not any("ct(" in f.actions for f in fl if "in_port=5" in f.match)
    assert {f.match for f in table(fl, INGRESS) if f.priority == 110} == {"reg5=0x5,ip", "reg5=0x5,ipv6"}


def test_rules_match_the_peer_on_the_right_side_and_port_ranges_as_masks() -> None:
    assert rule_matches(SSH, 5) == ["reg3=0x5,tcp,tp_dst=22"]
    assert rule_matches(RuleMatch("egress", "IPv4", 17, 1000, 1003, remote_prefix="10.9.0.0/16"), 5) == [
        "reg3=0x5,udp,nw_dst=10.9.0.0/16,tp_dst=0x3e8/0xfffc"]
    assert rule_matches(RuleMatch("ingress", "IPv6", 58, icmp_type=128, icmp_code=0, remote_prefix="fd00::/8"), 5) == [
        "reg3=0x5,icmp6,ipv6_src=fd00::/8,icmp_type=128,icmp_code=0"]
    assert rule_matches(RuleMatch("ingress", "IPv4", 47, remote_prefix="0.0.0.0/0"), 5) == ["reg3=0x5,ip,nw_proto=47"]
    assert rule_matches(RuleMatch("ingress", "IPv4", 6, 1, 65535), 5) == ["reg3=0x5,tcp"]


def test_port_masks_cover_exactly_the_range() -> None:
    rng = random.Random(7)
    for _ in range(300):
        low = rng.randint(1, 65535)
        high = rng.randint(low, min(65535, low + rng.choice((0, 3, 100, 5000, 70000))))
        covered = set()
        for m in port_masks(low, high):
            value, _, mask = m.partition("/")
            v, mk = int(value, 0), int(mask, 0) if mask else 0xFFFF
            covered |= {p for p in range(v, v + (0xFFFF & ~mk) + 1) if p & mk == v}
        assert covered == set(range(low, high + 1)), (low, high)
    assert port_masks(80, 80) == ["80"] and port_masks(1024, 2047) == ["0x400/0xfc00"]


def test_a_remote_group_is_a_conjunction_whose_members_are_one_flow_each() -> None:
    fl = table(flows(), INGRESS_RULES)
    (cid,) = conj_ids([("g-web", "ingress", "IPv4")]).values()
    by_match = {f.match: f.actions for f in fl if f.priority == 50}
    assert by_match[f"{WEB_IN},tcp,tp_dst=5432"] == f"conjunction({cid},2/2)"
    assert by_match["ip,nw_src=10.0.0.1/32"] == by_match["ip,nw_src=10.0.0.7/32"] == f"conjunction({cid},1/2)"
    assert by_match[f"conj_id={cid},ip"] == "goto_table:43"
    assert by_match[f"{WEB_IN},tcp,tp_dst=22"] == "goto_table:43"


def test_a_member_coming_or_going_changes_its_own_flow_only() -> None:
    before = flows()
    grown = flows(replace(PLAN, address_sets=(replace(MEMBERS, v4=(*MEMBERS.v4, "10.0.0.8/32")),)))
    changes = diff_flows(grown, observed(before))
    assert [f.match for f in changes.add["kv-int"]] == ["ip,nw_src=10.0.0.8/32"] and not changes.delete
    shrunk = flows(replace(PLAN, address_sets=(replace(MEMBERS, v4=("10.0.0.7/32",)),)))
    changes = diff_flows(shrunk, observed(before))
    assert not changes.add and [f.match for f in changes.delete["kv-int"]] == ["ip,nw_src=10.0.0.1/32"]


def test_another_port_using_the_group_adds_its_own_flows_only() -> None:
    port3 = PortPlan("p3", "net-a", "fa:16:3e:00:00:03", ("10.0.0.3",), "kvt-p3", 1450)
    flt3 = replace(WEB_FILTER, port_id="p3", device="kvt-p3", mac=port3.mac, sources=(("10.0.0.3/32", port3.mac),),
                   macs=(port3.mac,), rules=(DB_FROM_WEB,))
    plan = replace(PLAN, ports=(*PLAN.ports, port3), filters=(WEB_FILTER, flt3))
    changes = diff_flows(flows(plan, {**OFPORTS, "kvt-p3": 7}), observed(flows()))
    assert not any(f.match.startswith("ip,nw_src=") for f in changes.add["kv-int"])  # member flows untouched
    assert all(f.table in (L2, FLOOD, ARP) for f in changes.delete["kv-int"])  # the flood lists gained a port


def test_ports_with_the_same_rules_share_their_rule_flows() -> None:
    port3 = PortPlan("p3", "net-a", "fa:16:3e:00:00:03", ("10.0.0.3",), "kvt-p3", 1450)
    twin = replace(WEB_FILTER, port_id="p3", device="kvt-p3", mac=port3.mac, sources=(("10.0.0.3/32", port3.mac),),
                   macs=(port3.mac,))
    plan = replace(PLAN, ports=(*PLAN.ports, port3), filters=(WEB_FILTER, twin))
    changes = diff_flows(flows(plan, {**OFPORTS, "kvt-p3": 7}), observed(flows()))
    assert not any(f.table in (EGRESS_RULES, INGRESS_RULES) for f in changes.add["kv-int"])  # p1's rule flows serve p3
    (ingress,) = [f for f in changes.add["kv-int"] if f.table == INGRESS and f.match == f"reg5=0x7,dl_dst={port3.mac}"]
    assert f"load:{set_id(WEB_FILTER, 'ingress'):#x}->NXM_NX_REG3[]" in ingress.actions
    other = replace(twin, rules=(EGRESS_ALL,))  # same egress, no ingress rule: a rule set of its own
    plan = replace(plan, filters=(WEB_FILTER, other))
    added = diff_flows(flows(plan, {**OFPORTS, "kvt-p3": 7}), observed(flows())).add["kv-int"]
    assert not any(f.table == EGRESS_RULES for f in added) and set_id(other, "ingress") != set_id(WEB_FILTER, "ingress")


def test_same_match_is_one_flow_a_plain_accept_wins_and_shared_members_carry_both_conjunctions() -> None:
    other = AddressSet("g-db", ("10.0.0.7/32",))
    both = replace(WEB_FILTER, rules=(DB_FROM_WEB, replace(DB_FROM_WEB, remote_group="g-db"),
                                      RuleMatch("ingress", "IPv4", 6, 22, 22, remote_group="g-web"), SSH))
    fl = table(flows(replace(PLAN, filters=(both,), address_sets=(MEMBERS, other))), INGRESS_RULES)
    ids = conj_ids([("g-web", "ingress", "IPv4"), ("g-db", "ingress", "IPv4")])
    by_match = {f.match: f.actions for f in fl if f.priority == 50}
    web, db = ids[("g-web", "ingress", "IPv4")], ids[("g-db", "ingress", "IPv4")]
    both_in = f"reg3={set_id(both, 'ingress'):#x}"
    assert by_match["ip,nw_src=10.0.0.7/32"] == ",".join(sorted([f"conjunction({web},1/2)", f"conjunction({db},1/2)"]))
    assert by_match[f"{both_in},tcp,tp_dst=5432"] == ",".join(sorted([f"conjunction({web},2/2)",
                                                                       f"conjunction({db},2/2)"]))
    assert by_match[f"{both_in},tcp,tp_dst=22"] == "goto_table:43"  # from anywhere covers from the group


def test_conjunction_ids_are_stable_and_never_shared() -> None:
    keys = [(f"g{i}", d, "IPv4") for i in range(300) for d in ("ingress", "egress")]
    ids = conj_ids(keys)
    assert len(set(ids.values())) == len(keys) and 0 not in ids.values()
    assert conj_ids(keys[:10]) == {k: ids[k] for k in keys[:10]}  # independent of what else the host has


def test_a_filter_ovs_cannot_enforce_is_refused_and_its_port_forwards_nothing() -> None:
    lite = replace(WEB_FILTER, rules=(RuleMatch("ingress", "IPv4", 136, 5000, 5000),))
    plan = replace(PLAN, filters=(lite,))
    assert "cannot match the ports" in filters.refused(plan)["p1"]
    fl = flows(plan)
    assert not any("in_port=5" in f.match or "reg5=0x5" in f.match for f in fl)  # no classify, no filter flows
    assert "load:0x5->NXM_NX_REG5[],resubmit(,40)" in {f.actions for f in table(fl, L2)}  # into INGRESS: dropped
    missing_set = replace(PLAN, address_sets=())
    assert "no address set" in filters.refused(missing_set)["p1"]


def test_an_unchanged_plan_renders_the_same_cookies() -> None:
    assert [f.cookie for f in flows()] == [f.cookie for f in flows()]
    assert not diff_flows(flows(), observed(flows())).add
