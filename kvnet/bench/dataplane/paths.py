"""Reference paths built by hand in namespaces: the constructs kvnet programs, without kvnet.

veth    sender -- receiver                          (the limit of this machine)
bridge  sender -- [host: br0] -- receiver
vxlan   sender -- [h1: br0+vxlan0] =underlay= [h2: br0+vxlan0] -- receiver   (static FDB, no learning)
routed  sender -- [router] -- receiver              (two subnets)
nat     sender -- [router: DNAT 1:1 floating IP] -- receiver   (floating-IP style)
snat    sender -- [router: SNAT] -- receiver        (VM without a floating IP going out)
Addresses are private/documentation ranges and exist only inside these namespaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kvnet.bench.dataplane.base import Endpoints, Namespaces, Path, addr, mac_of, namespaces, register, route
from kvnet.sys.cmd import run
from kvnet.sys.netns import add_veth

Builder = Callable[[Namespaces], Endpoints]


@dataclass(frozen=True)
class HandPath:
    name: str
    builder: Builder
    description: str
    reference: str | None = None

    @contextmanager
    def build(self, prefix: str) -> Iterator[Endpoints]:
        with namespaces(prefix) as ns:
            yield self.builder(ns)


def _endpoints(s: str, r: str, dst_ip: str, dst_mac: str, host: str, src_ip: str) -> Endpoints:
    return Endpoints(sender_ns=s, sender_dev="eth0", src_mac=mac_of(s, "eth0"), src_ip=src_ip,
                     dst_mac=dst_mac, dst_ip=dst_ip, receiver_ns=r, receiver_dev="eth0", host_ns=host)


def build_veth(ns: Namespaces) -> Endpoints:
    s, r = ns.add("s"), ns.add("r")
    add_veth("eth0", s, "eth0", r)
    addr(s, "eth0", "10.90.0.1/24")
    addr(r, "eth0", "10.90.0.2/24")
    return _endpoints(s, r, "10.90.0.2", mac_of(r, "eth0"), r, "10.90.0.1")


def _bridge(host: str, name: str = "br0") -> None:
    run(["ip", "-n", host, "link", "add", name, "type", "bridge", "stp_state", "0"])
    run(["ip", "-n", host, "link", "set", name, "up"])


def _enslave(host: str, dev: str, bridge: str = "br0") -> None:
    run(["ip", "-n", host, "link", "set", dev, "master", bridge])


def build_bridge(ns: Namespaces) -> Endpoints:
    s, h, r = ns.add("s"), ns.add("h"), ns.add("r")
    _bridge(h)
    add_veth("eth0", s, "vs", h)
    add_veth("eth0", r, "vr", h)
    _enslave(h, "vs")
    _enslave(h, "vr")
    addr(s, "eth0", "10.91.0.1/24")
    addr(r, "eth0", "10.91.0.2/24")
    return _endpoints(s, r, "10.91.0.2", mac_of(r, "eth0"), h, "10.91.0.1")


def _vxlan_host(h: str, local: str, remote: str, remote_mac: str) -> None:
    run(["ip", "-n", h, "link", "add", "vxlan0", "type", "vxlan", "id", "42", "local", local,
         "dstport", "4789", "nolearning", "dev", "u"])
    run(["ip", "-n", h, "link", "set", "vxlan0", "up"])
    _enslave(h, "vxlan0")
    run(["bridge", "-n", h, "link", "set", "dev", "vxlan0", "learning", "off"])
    run(["bridge", "-n", h, "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0", "dst", remote])
    run(["bridge", "-n", h, "fdb", "add", remote_mac, "dev", "vxlan0", "dst", remote, "self", "permanent"])
    run(["bridge", "-n", h, "fdb", "add", remote_mac, "dev", "vxlan0", "master", "static"])


def build_vxlan(ns: Namespaces) -> Endpoints:
    s, h1, h2, r, ul = ns.add("s"), ns.add("h1"), ns.add("h2"), ns.add("r"), ns.add("ul")
    # The hosts meet on an underlay switch, as in the kvnet lab, so kvnet-vxlan compares like with like.
    _bridge(ul)
    for host, port in ((h1, "p1"), (h2, "p2")):
        add_veth("u", host, port, ul, mtu=1600)  # 50 bytes of VXLAN headroom for 1500-byte inner frames
        _enslave(ul, port)
    addr(h1, "u", "192.168.90.1/24")
    addr(h2, "u", "192.168.90.2/24")
    for h in (h1, h2):
        _bridge(h)
    add_veth("eth0", s, "vs", h1)
    add_veth("eth0", r, "vr", h2)
    _enslave(h1, "vs")
    _enslave(h2, "vr")
    addr(s, "eth0", "10.92.0.1/24")
    addr(r, "eth0", "10.92.0.2/24")
    s_mac, r_mac = mac_of(s, "eth0"), mac_of(r, "eth0")
    _vxlan_host(h1, "192.168.90.1", "192.168.90.2", r_mac)
    _vxlan_host(h2, "192.168.90.2", "192.168.90.1", s_mac)
    return _endpoints(s, r, "10.92.0.2", r_mac, h2, "10.92.0.1")


def _two_legs(ns: Namespaces, left: str, right: str) -> tuple[str, str, str]:
    """sender --(left net)-- router --(right net)-- receiver; returns the namespaces."""
    s, rt, r = ns.add("s"), ns.add("rt", router=True), ns.add("r")
    add_veth("eth0", s, "left", rt)
    add_veth("right", rt, "eth0", r)
    addr(s, "eth0", f"{left}.2/24")
    addr(rt, "left", f"{left}.1/24")
    addr(rt, "right", f"{right}.1/24")
    addr(r, "eth0", f"{right}.2/24")
    return s, rt, r


def build_routed(ns: Namespaces) -> Endpoints:
    s, rt, r = _two_legs(ns, "10.93.1", "10.93.2")
    route(s, "default", "via", "10.93.1.1")
    route(r, "default", "via", "10.93.2.1")
    return _endpoints(s, r, "10.93.2.2", mac_of(rt, "left"), rt, "10.93.1.2")


FLOATING_IP = "198.51.100.10"


def build_nat(ns: Namespaces) -> Endpoints:
    """External sender -> floating IP on the router's external leg -> DNAT 1:1 -> fixed IP."""
    s, rt, r = _two_legs(ns, "198.51.100", "10.94.0")
    addr(rt, "left", f"{FLOATING_IP}/32")
    route(r, "default", "via", "10.94.0.1")
    run(["nft", "-f", "-"], netns=rt, input=(
        "table ip kvnat {\n"
        "  chain pre { type nat hook prerouting priority -100; "
        f"ip daddr {FLOATING_IP} dnat to 10.94.0.2; }}\n"
        "  chain post { type nat hook postrouting priority 100; "
        f"ip saddr 10.94.0.2 oifname \"left\" snat to {FLOATING_IP}; }}\n"
        "}\n"))
    return _endpoints(s, r, FLOATING_IP, mac_of(rt, "left"), rt, "198.51.100.2")


def build_snat(ns: Namespaces) -> Endpoints:
    """Internal sender (no floating IP) -> router SNATs to its external address -> receiver."""
    s, rt, r = _two_legs(ns, "10.95.0", "198.51.101")
    route(s, "default", "via", "10.95.0.1")  # the receiver has no route back to 10.95.0.0/24
    run(["nft", "-f", "-"], netns=rt, input=(
        "table ip kvnat {\n"
        "  chain post { type nat hook postrouting priority 100; "
        "oifname \"right\" snat to 198.51.101.1; }\n"
        "}\n"))
    return _endpoints(s, r, "198.51.101.2", mac_of(rt, "left"), rt, "10.95.0.2")


VETH = register(HandPath("veth", build_veth, "bare veth pair: the limit of this machine"))
BRIDGE = register(HandPath("bridge", build_bridge, "both veths in one Linux bridge in a host namespace"))
VXLAN = register(HandPath("vxlan", build_vxlan, "two hosts, VXLAN+bridge each, static FDB",
                          reference="bridge"))
ROUTED = register(HandPath("routed", build_routed, "a router namespace between two subnets"))
NAT = register(HandPath("nat", build_nat, "DNAT 1:1 floating IP in a router namespace (nft)",
                        reference="routed"))
SNAT = register(HandPath("snat", build_snat, "SNAT to the router's external address (nft)",
                         reference="routed"))
DEFAULT_PATHS = ("veth", "bridge", "vxlan", "routed", "nat", "snat")


@dataclass(frozen=True)
class WithDropper:
    """Any path plus an nft rule in the receiver namespace dropping every `every`-th benchmark
    packet at random (`numgen random mod every == 0`), before the sink counts: a harness check."""

    base: Path
    every: int = 2
    port: int = 9

    @property
    def name(self) -> str:
        return f"{self.base.name}+drop1/{self.every}"

    @property
    def reference(self) -> str | None:
        return self.base.name

    @property
    def description(self) -> str:
        return f"{self.base.description}, 1 in {self.every} dropped at random"

    @contextmanager
    def build(self, prefix: str) -> Iterator[Endpoints]:
        with self.base.build(prefix) as ep:
            run(["nft", "-f", "-"], netns=ep.receiver_ns, input=(
                "table inet kvdrop {\n  chain c { type filter hook input priority 0; "
                f"udp dport {self.port} numgen random mod {self.every} == 0 drop; }}\n}}\n"))
            yield ep
