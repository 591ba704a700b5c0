"""Hand-built references of kvnet's routed constructs: the same bridges, veths and namespaces, by hand.

Each mirrors one kvnet routed path (`kvnet_paths.py`) object for object on the packet's way, with the
rule each construct needs to work and nothing else (kvnet's extras -- policy-routing rules, hairpin
and mark rules, permanent neighbours, pinned FDB entries -- are what `ratio_to_reference` prices):

dvr-ref   VM A -veth- [host: br-a] -veth- [router: forwarding] -veth- [host: br-b] -veth- VM B
fip-ref   [ext: br-ext] -veth- [host: br-x] -veth(fg)- [router: nft raw prerouting
          `ip daddr set ip daddr map @fip_in`] -veth(qr)- [host: br-b] -veth- VM
fip-src-ref  the same, with the VM's egress through fg routed by source (`from <fixed IP> lookup 100`,
          main's default to the SNAT host): how a host where VMs with and without FIP share a router is
          usually built (Neutron's DVR). Not in the default run: kvnet builds no policy rule; this path
          prices what one costs (kvnet.plan)
fip-out-ref  the reverse of fip-ref: VM -> qr -> [router: routed out of fg, source rewritten to the FIP at
          postrouting `ip saddr set ip saddr map @fip_out`] -> fg -> [ext: br-ext, the receiver]
fip-out-tap-ref / fip-out-hook-ref  fip-out-ref with kvnet's gateway redirect chain on the VM's tap
          (to the same leg), and with a chain that never matches: what kvnet's chain and the hook alone
          cost. Not in the default run
snat-ref  VM -veth- [host: br-a] -veth(qr)- [router: nft nat postrouting `snat to` (conntrack)]
          -veth(qg)- [host: br-x] -veth- [ext: br-ext, the receiver]

The "internet" is a namespace whose bridge br-ext holds its address and sends/receives itself, as
the lab's `<lab>-ext` does. Addresses are private/documentation ranges inside these namespaces only.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvnet.bench.dataplane.base import Endpoints, Namespaces, addr, mac_of, register, route
from kvnet.bench.dataplane.paths import HandPath, _bridge, _enslave
from kvnet.dataplane.linux.gateway_redirect import Redirect, render_table, table_script
from kvnet.sys.cmd import run
from kvnet.sys.netns import add_veth

NET_A, NET_B, NET_X = "10.96.1", "10.96.2", "198.51.102"  # tenant A, tenant B, external /24s
EXT_IP, GATEWAY_IP, FLOATING_IP = f"{NET_X}.1", f"{NET_X}.2", f"{NET_X}.10"
EXT_BRIDGE = "br-ext"
SNAT_HOST, FIP_TABLE = "169.254.106.1", "100"  # never reached by the benchmark's packets


@dataclass(frozen=True)
class Cloud:
    """One hypervisor host namespace with its bridges, and a router namespace on it."""

    ns: Namespaces
    host: str
    router: str

    @classmethod
    def create(cls, ns: Namespaces, *bridges: str) -> Cloud:
        host, router = ns.add("h"), ns.add("rt", router=True)
        for bridge in bridges:
            _bridge(host, bridge)
        return cls(ns, host, router)

    def vm(self, role: str, bridge: str, ip: str, gateway: str) -> str:
        """A VM namespace whose eth0's host end (the "tap") is in `bridge`."""
        vm = self.ns.add(role)
        add_veth("eth0", vm, f"t-{role}", self.host)
        _enslave(self.host, f"t-{role}", bridge)
        addr(vm, "eth0", f"{ip}/24")
        route(vm, "default", "via", gateway)
        return vm

    def leg(self, name: str, bridge: str, *cidrs: str) -> str:
        """A router leg: `name` in the router, its host end in `bridge`; returns the leg's MAC."""
        add_veth(name, self.router, f"l-{name}", self.host)
        _enslave(self.host, f"l-{name}", bridge)
        for cidr in cidrs:
            addr(self.router, name, cidr)
        return mac_of(self.router, name)

    def internet(self, bridge: str) -> str:
        """The "internet": br-ext (EXT_IP) in its own namespace, cabled to the host's ex0 in `bridge`."""
        ext = self.ns.add("x")
        run(["ip", "-n", ext, "link", "add", EXT_BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        add_veth("h-ex", ext, "ex0", self.host)
        _enslave(ext, "h-ex", EXT_BRIDGE)
        _enslave(self.host, "ex0", bridge)
        addr(ext, EXT_BRIDGE, f"{EXT_IP}/24")
        run(["ip", "-n", ext, "link", "set", EXT_BRIDGE, "up"])
        return ext

    def nft(self, *chains: str, sets: str = "") -> None:
        run(["nft", "-f", "-"], netns=self.router, input=f"table ip kvnet {{\n{sets}{''.join(chains)}}}\n")


def _chain(name: str, type_: str, hook: str, priority: str, rule: str) -> str:
    return f"  chain {name} {{ type {type_} hook {hook} priority {priority}; policy accept; {rule}; }}\n"


def _vm_endpoints(s: str, r: str, dst_ip: str, dst_mac: str, host: str, src_ip: str, receiver_dev: str = "eth0",
                  ) -> Endpoints:
    return Endpoints(sender_ns=s, sender_dev="eth0", src_mac=mac_of(s, "eth0"), src_ip=src_ip, dst_mac=dst_mac,
                     dst_ip=dst_ip, receiver_ns=r, receiver_dev=receiver_dev, host_ns=host)


def build_dvr(ns: Namespaces) -> Endpoints:
    c = Cloud.create(ns, "br-a", "br-b")
    gw_mac = c.leg("qr-a", "br-a", f"{NET_A}.1/24")
    c.leg("qr-b", "br-b", f"{NET_B}.1/24")
    s = c.vm("s", "br-a", f"{NET_A}.21", f"{NET_A}.1")
    r = c.vm("r", "br-b", f"{NET_B}.21", f"{NET_B}.1")
    return _vm_endpoints(s, r, f"{NET_B}.21", gw_mac, c.host, f"{NET_A}.21")


def build_fip(ns: Namespaces) -> Endpoints:
    """A DVR-style FIP leg: the floating IP as /32 on fg, 1:1 stateless rewrite both ways."""
    return _fip(ns, source_routed=False)


def build_fip_source_routed(ns: Namespaces) -> Endpoints:
    return _fip(ns, source_routed=True)


def build_fip_out(ns: Namespaces) -> Endpoints:
    """The VM with the FIP sends to the internet: routed out of fg, leaving as its FIP."""
    into_vm = _fip(ns, source_routed=False)
    route(f"{ns.prefix}-rt", "default", "via", EXT_IP, "dev", "fg")
    return _vm_endpoints(into_vm.receiver_ns, into_vm.sender_ns, EXT_IP, mac_of(f"{ns.prefix}-rt", "qr-b"),
                         into_vm.host_ns, f"{NET_B}.31", receiver_dev=EXT_BRIDGE)


def _fip(ns: Namespaces, *, source_routed: bool) -> Endpoints:
    c = Cloud.create(ns, "br-x", "br-b")
    fixed = f"{NET_B}.31"
    fg_mac = c.leg("fg", "br-x", f"{FLOATING_IP}/32")
    c.leg("qr-b", "br-b", f"{NET_B}.1/24")
    if source_routed:  # policy routing for a mixed host: one table and one rule per FIP holder
        route(c.router, "default", "via", SNAT_HOST, "dev", "qr-b", "onlink")
        route(c.router, f"{NET_B}.0/24", "dev", "qr-b", "table", FIP_TABLE)
        route(c.router, f"{NET_X}.0/24", "dev", "fg", "table", FIP_TABLE)
        route(c.router, "default", "via", EXT_IP, "dev", "fg", "table", FIP_TABLE)
        run(["ip", "-n", c.router, "rule", "add", "pref", "30000", "from", fixed, "lookup", FIP_TABLE])
    else:
        route(c.router, f"{NET_X}.0/24", "dev", "fg")
    r = c.vm("r", "br-b", fixed, f"{NET_B}.1")
    ext = c.internet("br-x")
    c.nft(_chain("pre", "filter", "prerouting", "raw", 'iifname "fg" ip daddr set ip daddr map @fip_in'),
          _chain("post_fip", "filter", "postrouting", "srcnat - 10",
                 'oifname "fg" ip saddr set ip saddr map @fip_out'),
          sets=(f"  map fip_in {{ type ipv4_addr : ipv4_addr; elements = {{ {FLOATING_IP} : {fixed} }} }}\n"
                f"  map fip_out {{ type ipv4_addr : ipv4_addr; elements = {{ {fixed} : {FLOATING_IP} }} }}\n"))
    return Endpoints(sender_ns=ext, sender_dev=EXT_BRIDGE, src_mac=mac_of(ext, EXT_BRIDGE), src_ip=EXT_IP,
                     dst_mac=fg_mac, dst_ip=FLOATING_IP, receiver_ns=r, receiver_dev="eth0", host_ns=c.host)


def _with_tap_chain(ep: Endpoints, redirect: Redirect) -> Endpoints:
    """kvnet's netdev ingress chain for `redirect` on the sending VM's tap."""
    digest, body = render_table({"t-r": (redirect,)})
    run(["nft", "-f", "-"], netns=ep.host_ns, input=table_script(digest, body))
    return ep


def build_fip_out_tap(ns: Namespaces) -> Endpoints:
    """fip-out-ref with kvnet's chain on the VM's tap, readdressing the gateway MAC to itself and
    forwarding to the router leg's host end: the same work per frame as kvnet's readdressing to a FIP
    namespace, on an unchanged path."""
    ep = build_fip_out(ns)
    return _with_tap_chain(ep, Redirect(ep.dst_mac, ep.dst_mac, "l-qr-b"))


def build_fip_out_hook(ns: Namespaces) -> Endpoints:
    """fip-out-ref with a chain on the VM's tap whose rule never matches: what the hook alone costs."""
    never = "02:00:00:00:00:01"
    return _with_tap_chain(build_fip_out(ns), Redirect(never, never, "l-qr-b"))


def build_snat(ns: Namespaces) -> Endpoints:
    """The network node's gateway leg qg on the external bridge; conntrack SNAT to its address."""
    c = Cloud.create(ns, "br-a", "br-x")
    gw_mac = c.leg("qr-a", "br-a", f"{NET_A}.1/24")
    c.leg("qg", "br-x", f"{GATEWAY_IP}/24")
    route(c.router, "default", "via", EXT_IP)
    s = c.vm("s", "br-a", f"{NET_A}.41", f"{NET_A}.1")
    ext = c.internet("br-x")
    c.nft(_chain("nat_post", "nat", "postrouting", "srcnat",
                 f'oifname "qg" ip saddr {{ {NET_A}.0/24, {NET_B}.0/24 }} snat to {GATEWAY_IP}'))
    return _vm_endpoints(s, ext, EXT_IP, gw_mac, c.host, f"{NET_A}.41", receiver_dev=EXT_BRIDGE)


DVR_REF = register(HandPath("dvr-ref", build_dvr, "router namespace between two host bridges (by hand)"))
FIP_REF = register(HandPath("fip-ref", build_fip, "ext bridge -> fg leg, stateless nft FIP map -> bridge (by hand)"))
FIP_SRC_REF = register(HandPath("fip-src-ref", build_fip_source_routed,
                                "fip-ref with the FIP holder's egress routed by source (by hand)"))
# A/A control, not in the default run: the same construct built twice, so the ratio shows this
# machine's noise floor for any ratio measured in the same run.
FIP_REF_AA = register(HandPath("fip-ref-aa", build_fip, "fip-ref built a second time (noise floor of a ratio)",
                               reference="fip-ref"))
FIP_OUT_REF = register(HandPath("fip-out-ref", build_fip_out, "VM -> router, FIP source rewrite -> fg leg -> ext"))
FIP_OUT_TAP_REF = register(HandPath("fip-out-tap-ref", build_fip_out_tap,
                                    "fip-out-ref + kvnet's gateway redirect chain on the VM's tap (prices it)",
                                    reference="fip-out-ref"))
FIP_OUT_HOOK_REF = register(HandPath("fip-out-hook-ref", build_fip_out_hook,
                                     "fip-out-ref + a tap chain that never matches (prices the hook)",
                                     reference="fip-out-ref"))
SNAT_REF = register(HandPath("snat-ref", build_snat, "bridge -> router, conntrack SNAT -> qg leg -> ext (by hand)"))
DEFAULT_PATHS = (DVR_REF.name, FIP_REF.name, FIP_OUT_REF.name, SNAT_REF.name)
