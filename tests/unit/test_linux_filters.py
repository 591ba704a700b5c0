"""The Linux port filters, pure parts: render (plan -> nft objects), diff, the transaction, reading nft's
JSON back, and the conntrack sweep's judgement of an entry (issue #14). The kernel side:
tests/integration/test_linux_filters_kernel.py."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from kvnet.dataplane.linux.conntrack_sweep import Conn, allowed, parse
from kvnet.dataplane.linux.filter_objects import ObservedFilters, diff, element_text, nd_target_text, script
from kvnet.dataplane.linux.filter_render import (
    BRIDGE,
    FIXED_CHAINS,
    INET,
    RECEIVING,
    address_integers,
    assign_marks,
    render_filters,
    rule_line,
)
from kvnet.dataplane.linux.rule_sets import rule_sets
from kvnet.plan import HostPlan, NetworkPlan, PortPlan, RouterLeg, RouterPlan
from kvnet.plan.security import AddressSet, PortFilter, RuleMatch

MAC, PAIR_MAC = "fa:16:3e:00:00:01", "fa:16:3e:00:00:99"
GROUP = "22222222-0000-4000-8000-000000000001"
RULES = (RuleMatch("egress", "IPv4"), RuleMatch("ingress", "IPv4", 6, 22, 22, remote_prefix="192.0.2.0/24"),
         RuleMatch("ingress", "IPv4", 17, remote_group=GROUP), RuleMatch("ingress", "IPv4", 1, icmp_type=8))
FLT = PortFilter("p1", "kvt-a", "n1", 42, MAC, (("10.0.0.5/32", MAC), ("10.0.0.96/28", PAIR_MAC)),
                 (MAC, PAIR_MAC), RULES)
NET = NetworkPlan("n1", "vxlan", 1001, 1450, "kvb-n1", "kvx-n1", None, ct_zone=42)
PORT = PortPlan("p1", "n1", MAC, ("10.0.0.5",), "kvt-a", 1450)
OPEN = PortPlan("p2", "n1", "fa:16:3e:00:00:02", ("10.0.0.6",), "kvt-b", 1450)
PLAN = HostPlan("h1", "192.0.2.1", True, True, networks=(NET,), ports=(PORT, OPEN), filters=(FLT,),
                address_sets=(AddressSet(GROUP, ("10.0.0.7/32",)),))


def test_a_port_is_data_in_the_tables_not_chains_of_its_own() -> None:
    want = render_filters(PLAN, set(), {})
    el = want.elements
    # Both known (never dropped as unknown); kvt-b has no port security: nothing checks it
    assert el[(BRIDGE, "from_port")] == {'"kvt-a"': "goto sent_by_filtered", '"kvt-b"': "goto readdress"}
    assert el[(BRIDGE, "to_port")] == {'"kvt-a"': "goto to_filtered", '"kvt-b"': "accept"}
    assert set(el[(BRIDGE, "macs")]) == {f'"kvt-a" . {MAC}', f'"kvt-a" . {PAIR_MAC}'}
    assert set(el[(BRIDGE, "v4")]) == {f'"kvt-a" . {MAC} . 10.0.0.5/32', f'"kvt-a" . {PAIR_MAC} . 10.0.0.96/28'}
    assert el[(BRIDGE, "sender")] == {'"kvt-a"': "1"} and el[(BRIDGE, "receiver")] == {'"kvt-a"': str(RECEIVING | 1)}
    assert el[(INET, "zones")] == {'"kvb-n1"': "42"}
    egress, ingress = el[(INET, "sg_out")]["1"], el[(INET, "sg_in")][str(RECEIVING | 1)]
    assert egress.startswith("jump e-") and ingress.startswith("jump i-")
    assert set(want.chains) == {(INET, egress[5:]), (INET, ingress[5:])}  # the only chains: shared rule chains
    assert set(el[(INET, f"g4-{GROUP}")]) == {"10.0.0.7/32"}


def test_ports_with_the_same_rules_share_their_rule_chains() -> None:
    other = PortFilter("p2", "kvt-b", "n1", 42, OPEN.mac, (("10.0.0.6/32", OPEN.mac),), (OPEN.mac,), RULES)
    want = render_filters(replace(PLAN, filters=(FLT, other)), set(), {})
    assert len(want.chains) == 2 and len(set(want.elements[(INET, "sg_out")].values())) == 1


def test_the_fixed_chains_check_what_a_port_sends_and_receives() -> None:
    assert FIXED_CHAINS[(BRIDGE, "from_ports")] == (  # a tap whose filter is not in place forwards nothing
        "iifname vmap @from_port", 'iifname "kvt-*" drop')
    assert FIXED_CHAINS[(BRIDGE, "sent_by_filtered")][-1] == "drop"  # an ethertype other than IPv4, ARP, IPv6
    assert "iifname . ether saddr . ip saddr != @v4 drop" in FIXED_CHAINS[(BRIDGE, "sent_ip")]
    assert "iifname . arp saddr ether . arp saddr ip != @v4 drop" in FIXED_CHAINS[(BRIDGE, "sent_arp")]
    assert "udp sport 67 udp dport 68 drop" in FIXED_CHAINS[(BRIDGE, "sent_ip")]
    assert "icmpv6 type nd-router-advert drop" in FIXED_CHAINS[(BRIDGE, "sent_ip6")]
    received = FIXED_CHAINS[(BRIDGE, "to_filtered")]
    assert "ether type != { ip, arp, ip6 } drop" in received
    assert "meta pkttype != { broadcast, multicast } oifname . ether daddr != @macs drop" in received


def test_rules_become_set_elements_and_remote_group_rules_lines() -> None:
    assert rule_sets(RULES, "4") == [("icmp", frozenset({"8 . 0-255 . 0.0.0.0/0"})),
                                     ("port", frozenset({"6 . 22 . 192.0.2.0/24"})),
                                     ("proto", frozenset({"0-255 . 0.0.0.0/0"}))]  # udp from anywhere is in it
    assert rule_line(RULES[2]) == f"meta nfproto ipv4 ip saddr @g4-{GROUP} meta l4proto 17 return"
    assert rule_line(RuleMatch("egress", "IPv6", 6, 80, 90, remote_prefix="2001:db8::/32")) == \
        "meta nfproto ipv6 ip6 daddr 2001:db8::/32 meta l4proto 6 th dport 80-90 return"


def test_rules_the_kernel_would_refuse_in_one_set_go_to_two() -> None:
    """nft_pipapo refuses an element whose first or last corner lies in an element already there: a
    rule inside another is dropped (same union), a partial overlap goes to a second set."""
    ten = "10.0.0.0/8"
    inside = [RuleMatch("ingress", "IPv4", 6, 20, 30), RuleMatch("ingress", "IPv4", 6, 22, 22, remote_prefix=ten)]
    assert rule_sets(inside, "4") == [("port", frozenset({"6 . 20-30 . 0.0.0.0/0"}))]
    partial = [RuleMatch("ingress", "IPv4", 6, 20, 25), RuleMatch("ingress", "IPv4", 6, 22, 30, remote_prefix=ten)]
    assert rule_sets(partial, "4") == [("port", frozenset({"6 . 20-25 . 0.0.0.0/0"})),
                                       ("port", frozenset({"6 . 22-30 . 10.0.0.0/8"}))]


def test_a_thousand_rules_are_as_many_lookups_as_ten() -> None:
    """Per-packet cost must not grow with the rules: they are elements of one set per kind."""
    def chain_for(n: int) -> tuple[int, int]:
        rules = tuple(RuleMatch("ingress", "IPv4", 17, 1000 + i, 1000 + i) for i in range(n))
        want = render_filters(replace(PLAN, filters=(replace(FLT, rules=rules),)), set(), {})
        (ingress,) = [rules for (family, name), rules in want.chains.items() if name.startswith("i-")]
        return len(ingress), max(len(v) for k, v in want.elements.items() if k[1].startswith("r"))
    assert chain_for(10) == (4, 10) and chain_for(1000) == (4, 1000)


def test_a_fip_holders_frames_are_readdressed_only_to_a_leg_that_exists() -> None:
    gw, fq = "fa:6b:76:00:01:00", "02:6b:00:00:00:01"
    holder = replace(OPEN, gateway_redirects=((gw, fq),))
    fip_ns = RouterPlan("r1", "dvr_fip", legs=(RouterLeg("fq-a", "kvt-fq", "n1", fq, 1450),), instance="fip")
    plan = replace(PLAN, ports=(PORT, holder), routers=(fip_ns,))
    assert render_filters(plan, {"kvt-a", "kvt-b"}, {}).elements[(BRIDGE, "redirects")] == {}
    with_leg = render_filters(plan, {"kvt-a", "kvt-b", "kvt-fq"}, {})
    assert with_leg.elements[(BRIDGE, "redirects")] == {f'"kvt-b" . {gw}': fq}
    assert with_leg.elements[(BRIDGE, "from_port")]['"kvt-fq"'] == "goto readdress"  # the leg: known, not filtered


def test_marks_stay_with_their_ports() -> None:
    assert assign_marks(["kvt-b", "kvt-a"], {}) == {"kvt-a": 1, "kvt-b": 2}
    assert assign_marks(["kvt-b", "kvt-c"], {"kvt-a": 1, "kvt-b": 2}) == {"kvt-b": 2, "kvt-c": 1}


def test_empty_tables_are_built_in_one_transaction_and_a_second_pass_changes_nothing() -> None:
    changes = diff(render_filters(PLAN, set(), {}), ObservedFilters())
    assert changes.rebuild and len(changes.add_chains) == 2
    text = script(changes)
    assert text.index("add table bridge kvnet") < text.index("add set inet kvnet g4-") \
        < text.index("add chain inet kvnet i-") < text.index('add element bridge kvnet sender { "kvt-a" : 1 }')
    built = ObservedFilters().applied(changes)
    assert not diff(render_filters(PLAN, set(), {}), built)


def test_a_changed_rule_moves_one_element_and_a_member_is_one_element() -> None:
    built = ObservedFilters().applied(diff(render_filters(PLAN, set(), {}), ObservedFilters()))
    narrowed = replace(PLAN, filters=(replace(FLT, rules=RULES[:3]),),
                       address_sets=(AddressSet(GROUP, ("10.0.0.8/32",)),))
    changes = diff(render_filters(narrowed, set(), built.marks()), built)
    assert not changes.rebuild
    assert [n[:2] for _, n, _ in changes.add_chains] == ["i-"] and [n[:2] for _, n in changes.del_chains] == ["i-"]
    moved = str(RECEIVING | 1)
    assert [(m, k) for _, m, k in changes.del_elements if m != f"g4-{GROUP}"] == [("sg_in", moved)]
    assert [(m, k) for _, m, k, _ in changes.add_elements if m != f"g4-{GROUP}"] == [("sg_in", moved)]
    assert [k for _, m, k in changes.del_elements if m == f"g4-{GROUP}"] == ["10.0.0.7/32"]
    assert [k for _, m, k, _ in changes.add_elements if m == f"g4-{GROUP}"] == ["10.0.0.8/32"]
    text = script(changes)
    assert text.index("add chain inet kvnet i-") < text.index("add element inet kvnet sg_in") \
        < text.index("delete chain inet kvnet i-")


def test_a_port_that_leaves_takes_its_elements_and_unused_chains_and_sets() -> None:
    built = ObservedFilters().applied(diff(render_filters(PLAN, set(), {}), ObservedFilters()))
    gone = replace(PLAN, ports=(OPEN,), filters=(), address_sets=())
    changes = diff(render_filters(gone, set(), {}), built)
    assert len(changes.del_chains) == 2
    assert sorted(name[0] for _, name in changes.del_sets) == ["g", "g", "r", "r", "r"]  # members, rule sets
    assert ("bridge", "from_port", '"kvt-a"') in changes.del_elements
    assert ("bridge", "sender", '"kvt-a"') in changes.del_elements


def test_the_legacy_netdev_table_goes() -> None:
    built = ObservedFilters().applied(diff(render_filters(PLAN, set(), {}), ObservedFilters()))
    built.tables.add(("netdev", "kvnet"))
    changes = diff(render_filters(PLAN, set(), {}), built)
    assert changes.drop_legacy and script(changes).startswith("add table netdev kvnet\ndelete table netdev kvnet\n")


def test_nfts_json_reads_back_as_kvnet_wrote_it() -> None:
    assert element_text({"concat": ["kvt-a", "FA:16:3E:00:00:01", "10.0.0.5"]}) == \
        '"kvt-a" . fa:16:3e:00:00:01 . 10.0.0.5/32'
    assert element_text({"concat": ["kvt-a", "fa:16:3e:00:00:99", {"prefix": {"addr": "10.0.0.96", "len": 28}}]}) == \
        '"kvt-a" . fa:16:3e:00:00:99 . 10.0.0.96/28'
    assert element_text({"range": ["10.0.0.0", "10.0.0.255"]}) == "10.0.0.0/24"
    assert element_text({"jump": {"target": "e-0123456789ab"}}) == "jump e-0123456789ab"
    assert element_text({"accept": None}) == "accept"
    assert element_text(65537) == "65537" and element_text("fe80::1") == "fe80::1/128"


def test_neighbour_advertisement_targets_read_back_whether_nft_gives_a_number_or_hex() -> None:
    assert address_integers("fe80::1/128") == "0xfe800000000000000000000000000001"
    assert address_integers("::100/120") == "0x00000000000000000000000000000100-0x000000000000000000000000000001ff"
    small = {"concat": ["kvt-a", "fa:16:3e:00:00:01", {"range": [256, 511]}]}
    big = {"concat": ["kvt-a", "fa:16:3e:00:00:01", "0xfe800000000000000000000000000001"]}
    assert nd_target_text(small) == '"kvt-a" . fa:16:3e:00:00:01 . ' + address_integers("::100/120")
    assert nd_target_text(big) == '"kvt-a" . fa:16:3e:00:00:01 . ' + address_integers("fe80::1/128")


def test_conntrack_entries_are_parsed_in_their_original_direction() -> None:
    text = ("tcp      6 431999 ESTABLISHED src=192.0.2.9 dst=10.0.0.5 sport=40000 dport=22 src=10.0.0.5 dst=192.0.2.9 "
            "sport=22 dport=40000 [ASSURED] mark=0 zone=42 use=1\n"
            "icmp     1 29 src=10.0.0.5 dst=10.0.0.7 type=8 code=0 id=77 src=10.0.0.7 dst=10.0.0.5 type=0 code=0 "
            "id=77 mark=0 zone=42 use=1\n"
            "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n")
    ssh, ping = parse(text)
    assert (ssh.proto, str(ssh.src), ssh.dport) == (6, "192.0.2.9", 22)
    assert (ping.proto, ping.icmp_type, ping.icmp_id) == (1, 8, 77)
    assert ping.delete_argv(42)[-6:] == ["--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "77"]


def test_an_entry_is_kept_only_while_a_rule_allows_it() -> None:
    sets = {GROUP: AddressSet(GROUP, ("10.0.0.7/32",))}
    ip = ipaddress.ip_address
    assert allowed(Conn(6, ip("192.0.2.9"), ip("10.0.0.5"), 40000, 22), FLT, sets)
    assert not allowed(Conn(6, ip("198.51.100.9"), ip("10.0.0.5"), 40000, 22), FLT, sets)  # not from the prefix
    assert not allowed(Conn(6, ip("192.0.2.9"), ip("10.0.0.5"), 40000, 23), FLT, sets)  # another port
    assert allowed(Conn(17, ip("10.0.0.7"), ip("10.0.0.5"), 5000, 53), FLT, sets)  # from the remote group
    assert not allowed(Conn(17, ip("10.0.0.7"), ip("10.0.0.5"), 5000, 53), FLT, {GROUP: AddressSet(GROUP)})
    assert allowed(Conn(6, ip("10.0.0.5"), ip("203.0.113.1"), 40000, 443), FLT, sets)  # egress: all
    no_egress = replace(FLT, rules=RULES[1:])
    assert not allowed(Conn(6, ip("10.0.0.5"), ip("203.0.113.1"), 40000, 443), no_egress, sets)
    assert allowed(Conn(6, ip("10.0.0.1"), ip("10.0.0.2"), 1, 2), no_egress, sets)  # not this port's
