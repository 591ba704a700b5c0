"""Router namespaces without root: render (nft table, links), diff (everything undesired is deleted,
nothing equal is touched) and the leg MAC pinning."""

from __future__ import annotations

from kvnet.dataplane.linux.garp import garp_frame
from kvnet.dataplane.linux.nat import render_table
from kvnet.dataplane.linux.router_diff import diff_routers
from kvnet.dataplane.linux.router_render import render_router
from kvnet.dataplane.linux.router_state import RouterNs, router_ns
from kvnet.plan import FloatingIPNat, NeighSpec, RouterLeg, RouterPlan, RouteSpec, RuleSpec

LEGS = (RouterLeg("qg-1", "kvt-1", "ext", "fa:6b:76:00:00:01", 1500, ("203.0.113.5/24", "203.0.113.50/32")),
        RouterLeg("qr-2", "kvt-2", "net-a", "fa:6b:76:00:00:02", 1450, ("10.1.0.1/24",)))


def plan(*, fips: tuple[FloatingIPNat, ...] = (FloatingIPNat("203.0.113.50", "10.1.0.10", True),),
         neighbours: tuple[NeighSpec, ...] = (NeighSpec("qr-2", "10.1.0.10", "fa:6b:76:00:02:00"),)) -> RouterPlan:
    return RouterPlan(router_id="r1", role="centralized", legs=LEGS, external_leg="qg-1", snat_ip="203.0.113.5",
                      snat_subnets=("10.1.0.0/24",), fips=fips, neighbours=neighbours,
                      routes=(RouteSpec(254, "default", "qg-1", "203.0.113.1"),),
                      rules=(RuleSpec(0, "local"), RuleSpec(32766, "main"), RuleSpec(32767, "default")))


def test_router_namespaces_are_named_after_their_host_namespace() -> None:
    assert router_ns("kvlab-h1", "0123456789ab-cdef") == "kvlab-h1-kvr-0123456789"
    assert router_ns(None, "0123456789ab-cdef") == "kvr-0123456789"


def test_nat_table_is_1_to_1_for_fips_and_snat_for_the_rest() -> None:
    digest, body = render_table(plan())
    assert digest is not None
    assert 'iifname "qg-1" ip daddr set ip daddr map @ext_in accept' in body
    assert 'oifname "qg-1" ip saddr set ip saddr map @fip_out' in body
    assert 'oifname "qg-1" ip saddr { 10.1.0.0/24 } snat to 203.0.113.5' in body
    assert "203.0.113.50 : 10.1.0.10" in body
    no_fip_digest, no_fip_body = render_table(plan(fips=()))
    assert no_fip_digest not in (None, digest)
    assert "chain pre" not in no_fip_body and "chain post_fip" not in no_fip_body and "chain nat_pre" not in no_fip_body
    assert "snat to 203.0.113.5" in no_fip_body  # SNAT alone: conntrack's nat chain, nothing at raw


def test_a_dvr_instance_has_nft_rules_only_for_its_own_fips() -> None:
    remote = FloatingIPNat("203.0.113.50", "10.1.0.10", False)
    # East-west only (the router's FIPs live on other hosts): no table, so no nft hook for any packet.
    assert render_table(RouterPlan(router_id="r1", role="dvr", fips=(remote,))) == (None, "")
    local = FloatingIPNat("203.0.113.51", "10.2.0.10", True)
    _, body = render_table(RouterPlan(router_id="r1", role="dvr", external_leg="fg-1", fips=(remote, local)))
    assert "snat to" not in body and "chain nat_" not in body
    pre = body[body.index("chain pre"):]
    # Ingress from the external leg first (one name comparison for everything else), then one set lookup.
    assert pre.splitlines()[2:4] == ['    iifname "fg-1" ip daddr set ip daddr map @ext_in accept',
                                     "    ip daddr @fips jump to_fip"]
    assert "ext_in { type ipv4_addr : ipv4_addr; elements = { 203.0.113.51 : 10.2.0.10 } }" in body
    # Only FIP holders reach it from the inside: they hairpin; nothing is steered anywhere by mark.
    assert body.count("meta mark set") == 1 and "meta mark set 0x4b560001" in body


def test_an_emptied_table_is_deleted() -> None:
    have = render_router(plan(), "ns1")
    want = render_router(RouterPlan(router_id="r1", role="dvr", legs=LEGS[1:]), "ns1")
    assert want.nft_digest is None
    changes = diff_routers({"ns1": want}, {"ns1": have})
    assert changes.nft["ns1"].endswith("delete table ip kvnet\n")


def test_a_new_namespace_gets_everything_and_an_applied_one_nothing() -> None:
    want = render_router(plan(), "ns1")
    changes = diff_routers({"ns1": want}, {})
    assert changes.create_ns == ["ns1"] and len(changes.veth_add) == 2
    assert not any(line.startswith("rule ") for line in changes.ns_lines["ns1"])  # the kernel's rules stay
    moved = render_router(RouterPlan(router_id="r1", role="dvr", rules=(
        RuleSpec(10, "main", fwmark=0x4B560002), RuleSpec(20, "local"), RuleSpec(32766, "main"),
        RuleSpec(32767, "default"))), "ns2")
    moved_lines = diff_routers({"ns2": moved}, {}).ns_lines["ns2"]
    assert moved_lines.index("rule add pref 20 lookup local") < moved_lines.index("rule del pref 0 lookup local")
    assert changes.announce == [("ns1", "qg-1", "203.0.113.50", "fa:6b:76:00:00:01")]
    have = RouterNs("ns1", links={k: v.__class__(v.name, v.mac, v.mtu) for k, v in want.links.items()},
                    addresses=set(want.addresses), routes=set(want.routes), rules=set(want.rules),
                    neighbours=set(want.neighbours), nft_digest=want.nft_digest)
    assert len(diff_routers({"ns1": want}, {"ns1": have})) == 0


def test_objects_the_plan_no_longer_has_are_deleted_and_counted_as_stale() -> None:
    have = render_router(plan(), "ns1")
    have.routes.add(RouteSpec(254, "10.9.0.0/24", "qr-2", "169.254.1.1"))
    want = render_router(plan(fips=(), neighbours=()), "ns1")
    want.addresses.discard(("qg-1", "203.0.113.50/32"))  # the FIP's address goes with the FIP
    want.nft_digest = have.nft_digest = "same"
    changes = diff_routers({"ns1": want}, {"ns1": have, "ns-old": RouterNs("ns-old", rules={RuleSpec(1, "main")})})
    lines = changes.ns_lines["ns1"]
    assert "neigh del 10.1.0.10 dev qr-2" in lines
    assert "addr del 203.0.113.50/32 dev qg-1" in lines
    assert "route del 10.9.0.0/24 table 254 proto 107" in lines
    assert changes.delete_ns == ["ns-old"]
    assert changes.stale_objects({"ns1": have, "ns-old": RouterNs("ns-old", rules={RuleSpec(1, "main")})}) == 5


def test_gratuitous_arp_frame() -> None:
    frame = garp_frame("fa:6b:76:00:00:01", "203.0.113.50")
    assert len(frame) == 42 and frame[:6] == b"\xff" * 6 and frame[12:14] == b"\x08\x06"
    assert frame[28:32] == frame[38:42] == bytes([203, 0, 113, 50])
