"""What port security and security groups cost per packet (issue #14), in the same run as the paths
without them.

kvnet's L2 paths with the benchmark's flow allowed by a rule of the receiver's group, the flow's rule
last: `-sg10` (10 rules), `-sg1000` (1,000 rules), `-rg1000` (a rule whose remote group has 1,000
member ports, the sender among them); `-open` is the same path with port security off (no filter).
The benchmark flow is one-way UDP, which conntrack would never see answered: every packet judged as new,
walking the rules. Real flows are answered, so right before every measurement each path (kvnet's and
the references) is primed: one packet of the flow's 5-tuple, then one answer from the receiver; the
flow is then established and passes on its conntrack entry, as an answered flow does (conntrack
forgets an idle UDP flow after 30 s, less than the paths' turns take). `-new` paths (`--paths
kvnet-bridge-sg1000-new`, ...) skip the priming: the worst case, every packet a new connection.

On OVS hosts, `kvnet-ovs-vxlan-sg10` (and `-sg1000`, `-rg1000`) compare with `kvnet-ovs-vxlan-open`.

The hand-built references (`bridge-nft-ref`, `vxlan-nft-ref`) are the `bridge` and `vxlan` paths with
the same construct written by hand: a stateless check on the sender's port in a bridge table, and in
an inet table the network's conntrack zone, then the receiver's rules as one set lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from kvnet.bench.dataplane.base import Endpoints, Namespaces, register
from kvnet.bench.dataplane.kvnet_paths import CIDR, KvnetL2Path, bench_lab_name, use_lab_underlay
from kvnet.bench.dataplane.paths import HandPath, build_bridge, build_vxlan
from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, boot_vm
from kvnet.lab.lab import Lab
from kvnet.lab.ovs import lab_spec
from kvnet.sys.cmd import run

FLOW_PORT = 9  # the generators' UDP destination port
FLOW_SPORT = 1024  # and source port (kvnet.bench.dataplane.generators.trafgen_config)
MEMBERS = 1000


def decoy_rules(count: int) -> list[dict[str, Any]]:
    """`count` ingress rules that never match the benchmark flow (other UDP ports, TCP, other sources)."""
    rules = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            rules.append({"direction": "ingress", "protocol": "udp", "port_range_min": 10_000 + i})
        elif kind == 1:
            rules.append({"direction": "ingress", "protocol": "tcp", "port_range_min": 20_000 + i})
        else:
            rules.append({"direction": "ingress", "protocol": "udp", "port_range_min": FLOW_PORT,
                          "remote_ip_prefix": f"198.18.{i // 256 % 256}.{i % 256}/32"})
    return rules


@dataclass(frozen=True)
class Security:
    """How the benchmark VMs are filtered."""

    name: str
    rules: int = 0  # decoy rules before the flow's own
    members: int = 0  # extra members of the remote group the flow's rule names
    open: bool = False  # port security off

    def ports(self, client: Client, network: dict[str, Any]) -> dict[str, Any]:
        """The port fields of the two VMs, after making their group (and its members)."""
        if self.open:
            return {"port_security_enabled": False, "security_group_ids": []}
        if self.members:
            group = client.create("securitygroups", {"name": "bench", "rules": [{"direction": "egress"}]})
            client.add_rule(group["id"], {"direction": "ingress", "protocol": "udp", "port_range_min": FLOW_PORT,
                                          "remote_group_id": group["id"]})
            members = [{"op": "create", "kind": "ports", "body": {  # addresses away from the VMs' (10.92.0.x)
                "network_id": network["id"], "security_group_ids": [group["id"]],
                "fixed_ips": [{"ip_address": f"10.92.{4 + i // 250}.{1 + i % 250}"}]}} for i in range(self.members)]
            client.batch(members)
        else:
            flow = {"direction": "ingress", "protocol": "udp", "port_range_min": FLOW_PORT}
            group = client.create("securitygroups", {"name": "bench", "rules": [
                {"direction": "egress"}, *decoy_rules(self.rules - 1), flow]})
        return {"security_group_ids": [group["id"]]}


PRIME = ("import socket, sys\n"
         "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
         "s.bind((sys.argv[1], int(sys.argv[2])))\n"
         "s.sendto(b'kvnet-bench-prime', (sys.argv[3], int(sys.argv[4])))\n")


def warmed(ep: Endpoints) -> Endpoints:
    """`ep`, warmed before each measurement by `prime`: conntrack forgets an idle UDP flow in 30 s, and
    the paths take turns for longer than that."""
    return replace(ep, warm=partial(prime, ep))


def prime(ep: Endpoints) -> None:
    """The flow's first packet (the generators' 5-tuple), then the receiver's answer: established."""
    run(["python3", "-c", PRIME, ep.src_ip, str(FLOW_SPORT), ep.dst_ip, str(FLOW_PORT)], netns=ep.sender_ns)
    run(["python3", "-c", PRIME, ep.dst_ip, str(FLOW_PORT), ep.src_ip, str(FLOW_SPORT)], netns=ep.receiver_ns)


@dataclass(frozen=True)
class KvnetFilteredPath(KvnetL2Path):
    security: Security = Security("default")
    primed: bool = True

    @contextmanager
    def build(self, prefix: str) -> Iterator[Endpoints]:
        lab_name = self.lab_name()
        lab = Lab(lab_name)
        try:
            lab.up(lab_spec(lab_name, 2, self.dataplane), control_plane=True)
            with Client(control.server_url(lab)) as client:
                use_lab_underlay(client)
                network = client.create("networks", {"name": "bench"})
                client.create("subnets", {"network_id": network["id"], "cidr": CIDR.replace("/24", "/20")})
                fields = self.security.ports(client, network)
                sender = DemoVM("snd", "h1", "bench", "10.92.0.11")
                receiver = DemoVM("rcv", self.receiver_host, "bench", "10.92.0.12")
                records = {vm.name: boot_vm(lab, client, vm, **fields) for vm in (sender, receiver)}
            # No ping: the groups allow the benchmark's UDP flow only. Both ports are ACTIVE (boot_vm),
            # so their filters are in place; a path that delivers nothing shows as 0 pps.
            ep = Endpoints(
                sender_ns=n.vm_ns(lab_name, sender.name), sender_dev=n.VM_IF, src_mac=records["snd"]["mac"],
                src_ip=sender.ip, dst_mac=records["rcv"]["mac"], dst_ip=receiver.ip,
                receiver_ns=n.vm_ns(lab_name, receiver.name), receiver_dev=n.VM_IF,
                host_ns=n.host_ns(lab_name, self.receiver_host))
            yield warmed(ep) if self.primed else ep
        finally:
            lab.down()


def _filtered(base: str, host: str, security: Security, what: str, *, primed: bool = True) -> None:
    suffix = "" if primed else "-new"
    reference = base if security.open else f"{base}-nft-ref{suffix}"
    register(KvnetFilteredPath(f"kvnet-{base}-{security.name}{suffix}", reference,
                               f"{what}, {security.name}" + ("" if primed else ", every packet new"), host,
                               lab_name=bench_lab_name, security=security, primed=primed))


SECURITY = (Security("open", open=True), Security("sg10", rules=10), Security("sg1000", rules=1000),
            Security("rg1000", members=MEMBERS))
for _security in SECURITY:
    for _primed in (True, False):
        _filtered("bridge", "h1", _security, "two VMs on one host, bridged by kvnet", primed=_primed)
        _filtered("vxlan", "h2", _security, "two VMs on two hosts, kvnet VXLAN overlay", primed=_primed)
    if not _security.open:  # OVS: next to the same path with port security off (kvnet.bench.dataplane.ovs_paths)
        register(KvnetFilteredPath(f"kvnet-ovs-vxlan-{_security.name}", "kvnet-ovs-vxlan-open",
                                   f"two VMs on two OVS hosts, {_security.name}", "h2", dataplane="ovs",
                                   lab_name=bench_lab_name, security=_security))


def hand_filter(sender_host: str, receiver_host: str, ep: Endpoints) -> None:
    """The construct kvnet builds, by hand: the sender's port checked in a bridge table (its MAC and
    address), the network's conntrack zone, the receiver's rules as one set lookup."""
    run(["nft", "-f", "-"], netns=sender_host, input=(
        "table bridge kvref {\n  chain from_ports {\n    type filter hook prerouting priority -300; policy accept;\n"
        f'    iifname "vs" ether saddr != {ep.src_mac} drop\n'
        f'    iifname "vs" ether type ip ip saddr != {ep.src_ip} drop\n  }}\n}}\n'))
    run(["nft", "-f", "-"], netns=receiver_host, input=(
        "table inet kvref {\n"
        f"  set allow {{ type inet_proto . inet_service . ipv4_addr; flags interval; "
        f"elements = {{ 17 . {FLOW_PORT} . 0.0.0.0/0 }} }}\n"
        "  chain zone {\n    type filter hook prerouting priority -300; policy accept;\n    ct zone set 7\n  }\n"
        "  chain groups {\n    type filter hook forward priority 0; policy accept;\n"
        '    oifname != "vr" accept\n    ct state established,related accept\n'
        "    meta l4proto . th dport . ip saddr @allow accept\n    drop\n  }\n}\n"))


def build_bridge_ref(ns: Namespaces, warm: bool = True) -> Endpoints:
    ep = build_bridge(ns)
    hand_filter(ep.host_ns, ep.host_ns, ep)
    return warmed(ep) if warm else ep


def build_vxlan_ref(ns: Namespaces, warm: bool = True) -> Endpoints:
    ep = build_vxlan(ns)
    hand_filter(f"{ns.prefix}-h1", ep.host_ns, ep)
    return warmed(ep) if warm else ep


for _name, _builder, _base in (("bridge", build_bridge_ref, "bridge"), ("vxlan", build_vxlan_ref, "vxlan")):
    register(HandPath(f"{_name}-nft-ref", _builder, f"{_base}, with a hand-built port filter of kvnet's construct",
                      reference=_base))
    register(HandPath(f"{_name}-nft-ref-new", lambda ns, b=_builder: b(ns, warm=False),  # type: ignore[misc]
                      f"{_base}, hand-built port filter, every packet new", reference=_base))
