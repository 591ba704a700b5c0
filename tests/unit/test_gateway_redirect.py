"""The host's nft `netdev kvnet` table that sends a FIP holder's routed frames to its router's FIP
namespace (pure parts: which taps, the table, the transaction)."""

from __future__ import annotations

from kvnet.agent.plan import HostPlan, PortPlan, RouterLeg, RouterPlan
from kvnet.dataplane.linux.gateway_redirect import desired_redirects, render_table, table_script

GW, FQ = "fa:6b:76:00:01:00", "02:6b:00:00:00:01"
HOLDER = PortPlan("vm-a", "net-a", "fa:6b:76:00:02:00", ("10.1.0.10",), "kvt-a", 1450, gateway_redirects=((GW, FQ),))
OTHER = PortPlan("vm-c", "net-a", "fa:6b:76:00:02:09", ("10.1.0.20",), "kvt-c", 1450)
FIP_NS = RouterPlan("r1", "dvr_fip", legs=(RouterLeg("fq-a", "kvt-fq", "net-a", FQ, 1450),), instance="fip")
PLAN = HostPlan("h2", "192.0.2.2", True, True, ports=(HOLDER, OTHER), routers=(FIP_NS,))


def test_only_fip_holders_taps_that_exist_get_a_chain_to_a_leg_that_exists() -> None:
    assert desired_redirects(PLAN, {"kvt-a", "kvt-c", "kvt-fq"}) == {"kvt-a": ((GW, FQ),)}
    assert desired_redirects(PLAN, {"kvt-c", "kvt-fq"}) == {}  # the hypervisor has not created the tap yet
    assert desired_redirects(PLAN, {"kvt-a", "kvt-c"}) == {}  # the router pass has not made the leg yet


def test_the_table_rewrites_the_gateway_mac_on_the_taps_ingress_only() -> None:
    digest, body = render_table({"kvt-a": ((GW, FQ),)})
    assert digest and 'type filter hook ingress device "kvt-a" priority filter; policy accept;' in body
    assert f"ether daddr {GW} ether daddr set {FQ}" in body and body.count("chain ") == 1
    assert render_table({}) == (None, "")
    assert render_table({"kvt-a": ((GW, "02:6b:00:00:00:02"),)})[0] != digest  # any change shows in the digest


def test_the_table_is_replaced_or_deleted_in_one_transaction() -> None:
    digest, body = render_table({"kvt-a": ((GW, FQ),)})
    script = table_script(digest, body)
    assert script.startswith("table netdev kvnet {}\ndelete table netdev kvnet\n")
    assert f'comment "kvnet:{digest}"' in script
    assert table_script(None, "") == "table netdev kvnet {}\ndelete table netdev kvnet\n"
