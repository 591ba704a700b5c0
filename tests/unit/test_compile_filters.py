"""compile_filters: ports' security groups -> port filters and remote-group address sets (pure)."""

from __future__ import annotations

from kvnet.agent.compile import compile_host
from kvnet.agent.model import CloudModel
from kvnet.agent.security import link_local
from kvnet.model.resources import (
    AddressPair,
    FixedIP,
    Host,
    Network,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from kvnet.plan.security import AddressSet, RuleMatch

NET = Network(id="11111111-0000-4000-8000-000000000001", ct_zone=42)
WEB = SecurityGroup(id="22222222-0000-4000-8000-000000000001", name="web")
DB = SecurityGroup(id="22222222-0000-4000-8000-000000000002", name="db")
WEB.rules = [SecurityGroupRule(direction="ingress", protocol="tcp", port_range_min=443),
             SecurityGroupRule(direction="ingress", protocol="icmp", port_range_min=8, port_range_max=0),
             SecurityGroupRule(direction="egress")]
DB.rules = [SecurityGroupRule(direction="ingress", protocol="tcp", port_range_min=5432, remote_group_id=WEB.id),
            SecurityGroupRule(direction="ingress", protocol="47")]


def port(n: int, host: str, groups: list[str], **extra: object) -> Port:
    return Port(id=f"3333333{n}-0000-4000-8000-000000000000", network_id=NET.id, binding_host=host,
                mac_address=f"fa:16:3e:00:00:0{n}", fixed_ips=[FixedIP(subnet_id="s", ip_address=f"10.0.0.{n}")],
                security_group_ids=groups, **extra)


def model(*ports: Port) -> CloudModel:
    hosts = [Host(name="h1", tunnel_ip="192.0.2.1"), Host(name="h2", tunnel_ip="192.0.2.2")]
    return CloudModel.from_resources([*hosts, NET, WEB, DB, *ports])


def test_a_port_gets_its_addresses_macs_zone_and_the_union_of_its_groups_rules() -> None:
    vm = port(1, "h1", [WEB.id, DB.id], allowed_address_pairs=[AddressPair(ip_address="10.0.0.96/28",
                                                                         mac_address="fa:16:3e:00:00:99")])
    plan = compile_host("h1", model(vm))
    (flt,) = plan.filters
    assert (flt.device, flt.ct_zone, flt.mac) == (plan.ports[0].device, 42, "fa:16:3e:00:00:01")
    assert flt.sources == tuple(sorted([("10.0.0.1/32", "fa:16:3e:00:00:01"), ("10.0.0.96/28", "fa:16:3e:00:00:99"),
                                        (f"{link_local('fa:16:3e:00:00:01')}/128", "fa:16:3e:00:00:01")]))
    assert flt.macs == ("fa:16:3e:00:00:01", "fa:16:3e:00:00:99")
    assert RuleMatch("ingress", "IPv4", 6, 443, 443) in flt.rules
    assert RuleMatch("ingress", "IPv4", 1, icmp_type=8, icmp_code=0) in flt.rules
    assert RuleMatch("ingress", "IPv4", 6, 5432, 5432, remote_group=WEB.id) in flt.rules
    assert RuleMatch("ingress", "IPv4", 47) in flt.rules
    assert RuleMatch("egress", "IPv4") in flt.rules and len(flt.rules) == 5


def test_remote_group_members_come_from_every_host_and_their_pairs() -> None:
    db = port(1, "h1", [DB.id])
    web_here = port(2, "h1", [WEB.id])
    web_there = port(3, "h2", [WEB.id], allowed_address_pairs=[AddressPair(ip_address="10.0.0.64/27")])
    web_open = port(4, "h2", [], port_security_enabled=False)
    plan = compile_host("h1", model(db, web_here, web_there, web_open))
    assert plan.address_sets == (AddressSet(WEB.id, ("10.0.0.2/32", "10.0.0.3/32", "10.0.0.64/27")),)
    # a member leaving changes the set, and nothing else of the filter
    gone = compile_host("h1", model(db, web_here, web_open))
    assert gone.address_sets == (AddressSet(WEB.id, ("10.0.0.2/32",)),)
    assert gone.filters == plan.filters


def test_no_port_security_no_filter_and_no_groups_denies_everything() -> None:
    open_port = port(1, "h1", [], port_security_enabled=False)
    closed = port(2, "h1", [])
    plan = compile_host("h1", model(open_port, closed))
    assert [f.port_id for f in plan.filters] == [closed.id]
    assert plan.filters[0].rules == ()


def test_a_network_without_a_conntrack_zone_is_denied_until_it_has_one() -> None:
    old = NET.model_copy(update={"ct_zone": None})
    vm = port(1, "h1", [WEB.id])
    plan = compile_host("h1", CloudModel.from_resources([Host(name="h1", tunnel_ip="192.0.2.1"), old, WEB, vm]))
    assert plan.filters[0].rules == () and plan.filters[0].ct_zone == 0


def test_the_arp_responder_answers_for_a_pairs_single_address_unless_two_macs_claim_it() -> None:
    vip = AddressPair(ip_address="10.0.0.99")
    vmac_vip = AddressPair(ip_address="10.0.0.50", mac_address="00:00:5e:00:01:07")  # VRRP's virtual MAC
    a = port(1, "h1", [WEB.id], allowed_address_pairs=[vip, vmac_vip, AddressPair(ip_address="10.0.0.96/28")])
    b = port(2, "h2", [WEB.id], allowed_address_pairs=[vmac_vip])
    arp = dict(compile_host("h1", model(a, b)).networks[0].arp_entries)
    assert arp["10.0.0.99"] == a.mac_address and arp["10.0.0.50"] == "00:00:5e:00:01:07"
    assert not any(ip.startswith("10.0.0.9") and ip != "10.0.0.99" for ip in arp)  # a range: nothing to answer
    shared = port(3, "h2", [WEB.id], allowed_address_pairs=[vip])  # the same VIP, another MAC
    assert "10.0.0.99" not in dict(compile_host("h1", model(a, b, shared)).networks[0].arp_entries)


def test_rules_with_and_without_remote_prefixes_sort_together() -> None:
    mixed = SecurityGroup(id="22222222-0000-4000-8000-000000000003", name="mixed", rules=[
        SecurityGroupRule(direction="ingress", protocol="udp", port_range_min=9),
        SecurityGroupRule(direction="ingress", protocol="udp", port_range_min=9, remote_ip_prefix="198.18.0.1/32"),
        SecurityGroupRule(direction="ingress", protocol="udp", port_range_min=9, remote_group_id=WEB.id)])
    vm = port(1, "h1", [mixed.id])
    plan = compile_host("h1", CloudModel.from_resources([Host(name="h1", tunnel_ip="192.0.2.1"), NET, WEB, mixed, vm]))
    assert len(plan.filters[0].rules) == 3
