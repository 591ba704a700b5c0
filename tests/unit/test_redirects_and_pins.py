"""Which FIP holders' frames are readdressed to their router's FIP namespace (the rule itself is in the
port filters: test_linux_filters), and the MACs pinned on bridge ports (pure parts)."""

from __future__ import annotations

from kvnet.dataplane.linux.filter_render import desired_redirects
from kvnet.dataplane.linux.observe import parse_pins
from kvnet.dataplane.linux.pinned_fdb import desired_pins, diff_pins, kvnet_port_devices, plan_pins
from kvnet.dataplane.linux.state import Link, ObservedState
from kvnet.plan import HostPlan, PortPlan, RouterLeg, RouterPlan

GW, FQ = "fa:6b:76:00:01:00", "02:6b:00:00:00:01"
HOLDER = PortPlan("vm-a", "net-a", "fa:6b:76:00:02:00", ("10.1.0.10",), "kvt-a", 1450, gateway_redirects=((GW, FQ),))
OTHER = PortPlan("vm-c", "net-a", "fa:6b:76:00:02:09", ("10.1.0.20",), "kvt-c", 1450, learning=True)  # no port security
FIP_NS = RouterPlan("r1", "dvr_fip", legs=(RouterLeg("fq-a", "kvt-fq", "net-a", FQ, 1450),), instance="fip")
PLAN = HostPlan("h2", "192.0.2.2", True, True, ports=(HOLDER, OTHER), routers=(FIP_NS,))


def test_only_fip_holders_taps_get_a_redirect_to_a_leg_that_exists() -> None:
    assert desired_redirects(PLAN, {"kvt-a", "kvt-c", "kvt-fq"}) == {"kvt-a": ((GW, FQ),)}
    assert desired_redirects(PLAN, {"kvt-a", "kvt-c"}) == {}  # the router pass has not made the leg yet


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
