"""The Linux port filters, pure parts: render (plan -> nft objects), diff, the transaction, and the
conntrack sweep's judgement of an entry (issue #14). The kernel side: tests/integration/test_linux_filters.py."""

from __future__ import annotations

import ipaddress

from kvnet.dataplane.linux.conntrack_sweep import Conn, allowed, parse
from kvnet.dataplane.linux.filter_objects import ObservedFilters, diff, script
from kvnet.dataplane.linux.filter_render import (
    BASE_CHAINS,
    BRIDGE,
    INET,
    anti_spoof,
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


def test_a_filtered_port_is_dispatched_to_its_chains_and_an_open_port_passes() -> None:
    want = render_filters(PLAN, set(), {})
    out, into = want.elements[(BRIDGE, "out")], want.elements[(BRIDGE, "in")]
    assert out["kvt-b"] == into["kvt-b"] == "accept"
    assert out["kvt-a"].startswith("jump o-kvt-a-") and into["kvt-a"].startswith("jump i-kvt-a-")
    assert want.marks == {"kvt-a": 1}
    assert want.elements[(INET, "sg_out")]["1"].startswith("jump e-kvt-a-")
    assert want.elements[(INET, "sg_in")][str(1 << 16)].startswith("jump n-kvt-a-")
    assert want.elements[(INET, "zones")] == {"kvb-n1": "42"}
    (spec, members), = [v for k, v in want.sets.items() if k[1] == f"g4-{GROUP}"]
    assert members == frozenset({"10.0.0.7/32"}) and "interval" in spec.declaration
    sender = want.chains[(BRIDGE, out["kvt-a"].removeprefix("jump "))]
    assert sender[-1] == "meta mark set 1 accept"  # the frame goes on to the stateful rules with its mark


def test_anti_spoof_binds_each_address_to_its_mac_and_drops_the_rest() -> None:
    rules = anti_spoof(FLT, "accept")
    assert f"ether saddr != {{ {MAC}, {PAIR_MAC} }} drop" in rules
    assert (f"ether type ip ether saddr . ip saddr != {{ {MAC} . 10.0.0.5/32, {PAIR_MAC} . 10.0.0.96/28 }} drop"
            in rules)
    assert any(r.startswith("ether type arp arp saddr ether . arp saddr ip !=") for r in rules)
    assert "udp sport 67 udp dport 68 drop" in rules and "icmpv6 type nd-router-advert drop" in rules
    assert rules[-1] == "ether type != { ip, arp, ip6 } drop"  # a VLAN tag carries nothing past the checks


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
        want = render_filters(HostPlan(**{**PLAN.__dict__, "filters": (PortFilter(**{**FLT.__dict__,
                                                                                    "rules": rules}),)}), set(), {})
        (ingress,) = [rules for (family, name), rules in want.chains.items() if name.startswith("n-")]
        return len(ingress), max(len(members) for _, members in want.sets.values())
    assert chain_for(10) == (4, 10) and chain_for(1000) == (4, 1000)


def test_a_fip_holders_frames_are_readdressed_only_to_a_leg_that_exists() -> None:
    gw, fq = "fa:6b:76:00:01:00", "02:6b:00:00:00:01"
    holder = PortPlan("p2", "n1", "fa:16:3e:00:00:02", ("10.0.0.6",), "kvt-b", 1450, gateway_redirects=((gw, fq),))
    fip_ns = RouterPlan("r1", "dvr_fip", legs=(RouterLeg("fq-a", "kvt-fq", "n1", fq, 1450),), instance="fip")
    plan = HostPlan("h1", "192.0.2.1", True, True, networks=(NET,), ports=(PORT, holder), routers=(fip_ns,),
                    filters=(FLT,))
    without_leg = render_filters(plan, {"kvt-a", "kvt-b"}, {})
    assert without_leg.elements[(BRIDGE, "out")]["kvt-b"] == "accept"
    with_leg = render_filters(plan, {"kvt-a", "kvt-b", "kvt-fq"}, {})
    chain = with_leg.chains[(BRIDGE, with_leg.elements[(BRIDGE, "out")]["kvt-b"].removeprefix("jump "))]
    assert chain == (f"ether type ip ether daddr {gw} ether daddr set {fq}", "accept")
    assert with_leg.elements[(BRIDGE, "out")]["kvt-fq"] == "accept"  # the leg itself is not filtered


def test_marks_stay_with_their_ports() -> None:
    assert assign_marks(["kvt-b", "kvt-a"], {}) == {"kvt-a": 1, "kvt-b": 2}
    assert assign_marks(["kvt-b", "kvt-c"], {"kvt-a": 1, "kvt-b": 2}) == {"kvt-b": 2, "kvt-c": 1}


def observed_after(plan: HostPlan) -> ObservedFilters:
    """The tables as the kernel would list them after applying `plan` to empty ones."""
    want = render_filters(plan, set(), {})
    chains = set(want.chains) | {(f, "skeleton-v1") for f in (BRIDGE, INET)} | set(BASE_CHAINS)
    return ObservedFilters(tables={(BRIDGE, "kvnet"), (INET, "kvnet")}, chains=chains,
                           elements={k: dict(v) for k, v in want.elements.items()},
                           sets={k: members for k, (_, members) in want.sets.items()})


def test_empty_tables_are_built_in_one_transaction_and_a_second_pass_changes_nothing() -> None:
    changes = diff(render_filters(PLAN, set(), {}), ObservedFilters())
    assert changes.rebuild and len(changes.add_chains) == 4
    text = script(changes)
    assert text.index("add table bridge kvnet") < text.index("add chain bridge kvnet o-kvt-a-") \
        < text.index('add element bridge kvnet out { "kvt-a"')
    assert not diff(render_filters(PLAN, set(), {}), observed_after(PLAN))


def test_a_changed_rule_replaces_one_chain_and_moves_its_element_and_a_member_is_one_element() -> None:
    narrowed = PortFilter(**{**FLT.__dict__, "rules": RULES[:3]})
    plan = HostPlan(**{**PLAN.__dict__, "filters": (narrowed,), "address_sets": (AddressSet(GROUP, ("10.0.0.8/32",)),)})
    changes = diff(render_filters(plan, set(), {"kvt-a": 1}), observed_after(PLAN))
    assert not changes.rebuild
    assert [name[:8] for _, name, _ in changes.add_chains] == ["n-kvt-a-"]
    assert [name[:8] for _, name in changes.del_chains] == ["n-kvt-a-"]
    assert [(m, k) for _, m, k in changes.del_elements] == [("sg_in", str(1 << 16))]
    assert [(m, k) for _, m, k, _ in changes.add_elements] == [("sg_in", str(1 << 16))]
    assert [e for *_, e in changes.set_adds] == ["10.0.0.8/32"] and [e for *_, e in changes.set_dels] == ["10.0.0.7/32"]
    text = script(changes)
    assert text.index("add chain inet kvnet n-kvt-a-") < text.index("add element inet kvnet sg_in") \
        < text.index("delete chain inet kvnet n-kvt-a-")


def test_a_port_that_leaves_takes_its_chains_and_elements() -> None:
    gone = HostPlan(**{**PLAN.__dict__, "ports": (OPEN,), "filters": (), "address_sets": ()})
    changes = diff(render_filters(gone, set(), {}), observed_after(PLAN))
    assert len(changes.del_chains) == 4
    assert sorted(name[0] for _, name in changes.del_sets) == ["g", "g", "r", "r", "r"]  # members, rule sets
    assert ("bridge", "out", "kvt-a") in changes.del_elements


def test_the_legacy_netdev_table_goes() -> None:
    observed = observed_after(PLAN)
    observed.tables.add(("netdev", "kvnet"))
    changes = diff(render_filters(PLAN, set(), {}), observed)
    assert changes.drop_legacy and script(changes).startswith("add table netdev kvnet\ndelete table netdev kvnet\n")


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
    ssh_in = Conn(6, ip("192.0.2.9"), ip("10.0.0.5"), 40000, 22)
    assert allowed(ssh_in, FLT, sets)
    assert not allowed(Conn(6, ip("198.51.100.9"), ip("10.0.0.5"), 40000, 22), FLT, sets)  # not from the prefix
    assert not allowed(Conn(6, ip("192.0.2.9"), ip("10.0.0.5"), 40000, 23), FLT, sets)  # another port
    assert allowed(Conn(17, ip("10.0.0.7"), ip("10.0.0.5"), 5000, 53), FLT, sets)  # from the remote group
    assert not allowed(Conn(17, ip("10.0.0.7"), ip("10.0.0.5"), 5000, 53), FLT, {GROUP: AddressSet(GROUP)})
    assert allowed(Conn(6, ip("10.0.0.5"), ip("203.0.113.1"), 40000, 443), FLT, sets)  # egress: all
    no_egress = PortFilter(**{**FLT.__dict__, "rules": RULES[1:]})
    assert not allowed(Conn(6, ip("10.0.0.5"), ip("203.0.113.1"), 40000, 443), no_egress, sets)
    assert allowed(Conn(6, ip("10.0.0.1"), ip("10.0.0.2"), 1, 2), no_egress, sets)  # not this port's


def test_what_a_transaction_leaves_is_known_without_reading_it_again() -> None:
    """The second filter phase of a pass starts from the first one's result: it must equal a fresh read."""
    empty = ObservedFilters()
    built = empty.applied(diff(render_filters(PLAN, set(), {}), empty))
    assert not diff(render_filters(PLAN, set(), {}), built)
    gone = HostPlan(**{**PLAN.__dict__, "ports": (OPEN,), "filters": (), "address_sets": ()})
    after = built.applied(diff(render_filters(gone, set(), {}), built))
    assert not diff(render_filters(gone, set(), {}), after)
    assert after.chains == observed_after(gone).chains and after.sets == observed_after(gone).sets


def test_a_rule_set_as_read_back_is_not_diffed_by_element() -> None:
    """The kernel lists a concatenation's elements in its own form; a set named after its content is
    known by its name, so a fresh read of an unchanged table changes nothing."""
    observed = observed_after(PLAN)
    for key in list(observed.sets):
        if key[1].startswith("r"):
            observed.sets[key] = None
    assert not diff(render_filters(PLAN, set(), {}), observed)
