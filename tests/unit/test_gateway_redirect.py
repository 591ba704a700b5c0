"""The host's nft `netdev kvnet` table that sends a FIP holder's routed frames to its router's FIP
namespace, and the MACs pinned on bridge ports (pure parts: which taps, the table, the transaction,
the pins)."""

from __future__ import annotations

from kvnet.dataplane.linux.gateway_redirect import Redirect, desired_redirects, render_table, table_script
from kvnet.dataplane.linux.observe import parse_pins
from kvnet.dataplane.linux.pinned_fdb import desired_pins, diff_pins, kvnet_port_devices, plan_pins
from kvnet.dataplane.linux.state import Link, ObservedState
from kvnet.plan import HostPlan, PortPlan, RouterLeg, RouterPlan

GW, FQ = "fa:6b:76:00:01:00", "02:6b:00:00:00:01"
HOLDER = PortPlan("vm-a", "net-a", "fa:6b:76:00:02:00", ("10.1.0.10",), "kvt-a", 1450, gateway_redirects=((GW, FQ),))
OTHER = PortPlan("vm-c", "net-a", "fa:6b:76:00:02:09", ("10.1.0.20",), "kvt-c", 1450, learning=True)  # no port security
FIP_NS = RouterPlan("r1", "dvr_fip", legs=(RouterLeg("fq-a", "kvt-fq", "net-a", FQ, 1450),), instance="fip")
PLAN = HostPlan("h2", "192.0.2.2", True, True, ports=(HOLDER, OTHER), routers=(FIP_NS,))
TO_FQ = Redirect(GW, FQ, "kvt-fq")


def test_only_fip_holders_taps_that_exist_get_a_chain_to_a_leg_that_exists() -> None:
    assert desired_redirects(PLAN, {"kvt-a", "kvt-c", "kvt-fq"}) == {"kvt-a": (TO_FQ,)}
    assert desired_redirects(PLAN, {"kvt-c", "kvt-fq"}) == {}  # the hypervisor has not created the tap yet
    assert desired_redirects(PLAN, {"kvt-a", "kvt-c"}) == {}  # the router pass has not made the leg yet


def test_the_table_forwards_ipv4_for_the_gateway_mac_to_the_leg_on_the_taps_ingress_only() -> None:
    digest, body = render_table({"kvt-a": (TO_FQ,)})
    assert digest and 'type filter hook ingress device "kvt-a" priority filter; policy accept;' in body
    assert f'ether type ip ether daddr {GW} ether daddr set {FQ} fwd to "kvt-fq"' in body  # ARP untouched
    assert body.count("chain ") == 1
    assert render_table({}) == (None, "")
    assert render_table({"kvt-a": (TO_FQ._replace(leg_mac="02:6b:00:00:00:02"),)})[0] != digest  # any change shows


def test_the_table_is_replaced_or_deleted_in_one_transaction() -> None:
    digest, body = render_table({"kvt-a": (TO_FQ,)})
    script = table_script(digest, body)
    assert script.startswith("table netdev kvnet {}\ndelete table netdev kvnet\n")
    assert f'comment "kvnet:{digest}"' in script
    assert table_script(None, "") == "table netdev kvnet {}\ndelete table netdev kvnet\n"


def test_fip_holders_and_legs_macs_are_pinned_on_ports_the_bridge_has() -> None:
    want = desired_pins(PLAN)
    assert want == {("kvt-a", HOLDER.mac), ("kvt-fq", FQ)}  # OTHER's frames pass the bridge: it learns
    assert kvnet_port_devices(PLAN) == {"kvt-a", "kvt-c", "kvt-fq"}
    assert diff_pins(want, set(), {"kvt-fq", "kvt-c"}).add == [("kvt-fq", FQ)]  # no tap yet, no pin yet
    gone = diff_pins(desired_pins(HostPlan("h2", "192.0.2.2", True, True, ports=(OTHER,))),
                     {("kvt-c", OTHER.mac), ("kvt-c", "fa:6b:76:00:02:01")}, {"kvt-c"})
    assert gone.lines() == ["fdb del fa:6b:76:00:02:01 dev kvt-c master", f"fdb del {OTHER.mac} dev kvt-c master"]
    changed = diff_pins({("kvt-fq", FQ)}, {("kvt-fq", "aa:00:00:00:00:09")}, {"kvt-fq"})
    assert changed.lines() == ["fdb del aa:00:00:00:00:09 dev kvt-fq master",
                               f"fdb replace {FQ} dev kvt-fq master static"]


def test_pins_are_read_from_the_l2_passs_fdb_dump() -> None:
    rows = [{"mac": HOLDER.mac, "ifname": "kvt-a", "master": "kvb-1", "state": "static"},
            {"mac": OTHER.mac, "ifname": "kvt-c", "master": "kvb-1", "state": "static"},  # FIP gone
            {"mac": "fa:6b:76:00:02:07", "ifname": "kvt-c", "master": "kvb-1"},  # learned: the kernel's
            {"mac": "33:33:00:00:00:01", "ifname": "kvt-c", "flags": ["self"], "state": "permanent"},
            {"mac": "fa:6b:76:00:09:09", "ifname": "eth9", "master": "br9", "state": "static"}]  # not kvnet's
    observed = ObservedState(links={d: Link(d, "veth") for d in ("kvt-a", "kvt-c", "kvt-fq", "eth9")},
                             pins=parse_pins(rows))
    changes = plan_pins(PLAN, observed)
    assert changes.add == [("kvt-fq", FQ)] and changes.delete == [("kvt-c", OTHER.mac)]
