"""Paths built by kvnet itself: a lab with the API server and agents, VMs booted through the API.

Each is measured exactly like its hand-built reference (`paths.py`, `bridged_paths.py`) in the same
run, so `ratio_to_reference` says whether kvnet's configuration of the same kernel construct costs
anything (goal >= 0.95), while `ratio_to_veth` is the price of the construct itself.

L2 paths (`kvnet-bridge`, `kvnet-vxlan`) build a lab each. The routed paths share ONE lab
(`RoutedLab`, reference-counted over their `build()` contexts): 4 hosts (h1 = network node), the
lab's external network, one *distributed* router `r1` with net-a 10.1.0.0/24 and net-b 10.2.0.0/24;
each path boots only its own VMs into it:

    kvnet-dvr   da@h2 (net-a) -> h2's DVR namespace -> db@h2 (net-b)       same host, two subnets
    kvnet-fip   <lab>-ext (br-ext) -> h3 ex0 -> ext bridge -> fg- leg -> h3's FIP namespace
                (stateless nft FIP rewrite at raw prerouting) -> fq- leg -> net-b bridge -> fb@h3
    kvnet-fip-mixed  the same to mb@h4, where mc (net-a, no FIP) also lives: h4's router namespace
                sends mc's egress to the SNAT host, its FIP namespace mb's out of fg- (no policy rule)
    kvnet-fip-out  ob@h4 (FIP; oc beside it has none) -> its tap readdresses the gateway MAC and forwards
                the frame to the fq- leg -> h4's FIP namespace (source rewritten to the FIP) -> fg- leg
                -> ext bridge -> br-ext in <lab>-ext
    kvnet-snat  sa@h1 (net-a, no FIP) -> h1's dvr_snat namespace (conntrack SNAT to the gateway IP)
                -> qg- leg -> ext bridge -> ex0 -> br-ext in <lab>-ext (the receiver, counted there)

The lab's underlay is MTU 1550, so the cloud is told so (`underlay_mtu`) before any tenant network
exists: VXLAN tenant networks get MTU 1500 and 1518-byte frames fit, as in the references.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kvnet.bench.dataplane.base import Endpoints, mac_of, register
from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, boot_vm
from kvnet.lab.demo_routing import TENANT_SUBNETS, RoutedCloud, add_fip, build_routed_cloud, ext_ping_until
from kvnet.lab.lab import Lab
from kvnet.lab.ovs import lab_spec
from kvnet.lab.probe import ping_until
from kvnet.lab.spec import default_spec
from kvnet.sys.cmd import run_json

CIDR = "10.92.0.0/24"
DEADLINE_S = 10.0
EXT_SERVER_IP = n.EXT_SERVER_CIDR.split("/")[0]


def bench_lab_name() -> str:
    return f"kb{secrets.token_hex(3)}"  # lab names are at most 8 characters


def use_lab_underlay(client: Client) -> None:
    """Tell the cloud the lab's underlay MTU (1550) so that VXLAN tenant networks carry 1500 bytes."""
    client.set_config({"underlay_mtu": n.UNDERLAY_MTU})


def neigh_mac(ns: str, dev: str, ip: str) -> str:
    """The MAC `ns` resolved for `ip` on `dev` (the first hop its kernel itself would use)."""
    rows = run_json(["ip", "-n", ns, "-j", "neigh", "show", "to", ip, "dev", dev])
    macs = [r["lladdr"] for r in rows if r.get("lladdr")]
    if not macs:
        raise LookupError(f"{ns} has no neighbour entry for {ip} on {dev}")
    return str(macs[0])


@dataclass(frozen=True)
class KvnetL2Path:
    """Sender VM on h1 and receiver VM on `receiver_host`, one kvnet network, hosts of `dataplane`."""

    name: str
    reference: str
    description: str
    receiver_host: str
    dataplane: str = "linux"
    lab_name: Callable[[], str] = bench_lab_name  # tests give their own prefix
    port_fields: tuple[tuple[str, Any], ...] = ()  # more of both VMs' ports' fields (e.g. port security off)

    @contextmanager
    def build(self, prefix: str) -> Iterator[Endpoints]:
        lab_name = self.lab_name()
        lab = Lab(lab_name)
        try:
            lab.up(lab_spec(lab_name, 2, self.dataplane), control_plane=True)
            with Client(control.server_url(lab)) as client:
                use_lab_underlay(client)
                network = client.create("networks", {"name": "bench"})
                client.create("subnets", {"network_id": network["id"], "cidr": CIDR})
                sender = DemoVM("snd", "h1", "bench", "10.92.0.11")
                receiver = DemoVM("rcv", self.receiver_host, "bench", "10.92.0.12")
                records = {vm.name: boot_vm(lab, client, vm, **dict(self.port_fields)) for vm in (sender, receiver)}
            if ping_until(lab, sender.name, receiver.ip, DEADLINE_S) is None:
                raise RuntimeError(f"{self.name}: kvnet did not connect the benchmark VMs")
            yield Endpoints(
                sender_ns=n.vm_ns(lab_name, sender.name), sender_dev=n.VM_IF, src_mac=records["snd"]["mac"],
                src_ip=sender.ip, dst_mac=records["rcv"]["mac"], dst_ip=receiver.ip,
                receiver_ns=n.vm_ns(lab_name, receiver.name), receiver_dev=n.VM_IF,
                host_ns=n.host_ns(lab_name, self.receiver_host))
        finally:
            lab.down()


KVNET_BRIDGE = register(KvnetL2Path("kvnet-bridge", "bridge", "two VMs on one host, bridged by kvnet", "h1"))
KVNET_VXLAN = register(KvnetL2Path("kvnet-vxlan", "vxlan", "two VMs on two hosts, kvnet VXLAN overlay", "h2"))


@dataclass
class RoutedBench:
    """What a routed path gets from the shared lab."""

    lab: Lab
    client: Client
    cloud: RoutedCloud

    def vm(self, name: str, host: str, network: str, ip: str) -> DemoVM:
        vm = DemoVM(name, host, network, ip)
        boot_vm(self.lab, self.client, vm)
        return vm

    def vm_ns(self, vm: DemoVM) -> str:
        return n.vm_ns(self.lab.name, vm.name)

    def host_ns(self, host: str) -> str:
        return n.host_ns(self.lab.name, host)

    @property
    def ext_ns(self) -> str:
        return n.ext_ns(self.lab.name)


def build_bench_cloud(client: Client) -> RoutedCloud:
    """The external network (MTU 1500: the lab's ex0), then the lab's underlay MTU, then a distributed
    router with the two tenant subnets (MTU 1500 over VXLAN)."""
    cloud = build_routed_cloud(client, "distributed", subnets=())
    use_lab_underlay(client)
    router: dict[str, Any] = cloud.router
    for name, cidr in TENANT_SUBNETS:
        net = client.create("networks", {"name": name})
        sub = client.create("subnets", {"name": f"{name}-sub", "network_id": net["id"], "cidr": cidr})
        router = client.router_add_interface(router["id"], sub["id"])
        cloud.networks[name] = net
    cloud.router = client.get("routers", router["id"])
    return cloud


class RoutedLab:
    """One lab for every kvnet routed path: up at the first `use()`, down when the last one exits."""

    def __init__(self) -> None:
        self.users = 0
        self.bench: RoutedBench | None = None
        self.last_lab: str | None = None  # the name of the lab built last (tests check it is gone)

    @contextmanager
    def use(self) -> Iterator[RoutedBench]:
        if self.users == 0:
            self.bench = self._start()
            self.last_lab = self.bench.lab.name
        self.users += 1
        try:
            assert self.bench is not None
            yield self.bench
        finally:
            self.users -= 1
            if self.users == 0:
                self._stop()

    @staticmethod
    def _start() -> RoutedBench:
        lab_name = bench_lab_name()
        lab = Lab(lab_name)
        lab.up(default_spec(lab_name, 4), control_plane=True)
        client = Client(control.server_url(lab))
        try:
            return RoutedBench(lab, client, build_bench_cloud(client))
        except BaseException:
            client.close()
            lab.down()
            raise

    def _stop(self) -> None:
        bench, self.bench = self.bench, None
        if bench is not None:
            try:
                bench.client.close()
            finally:
                bench.lab.down()


ROUTED_LAB = RoutedLab()
Setup = Callable[[RoutedBench], Endpoints]


@dataclass(frozen=True)
class KvnetRoutedPath:
    name: str
    reference: str
    description: str
    setup: Setup
    shared: RoutedLab = ROUTED_LAB

    @contextmanager
    def build(self, prefix: str) -> Iterator[Endpoints]:
        with self.shared.use() as bench:
            yield self.setup(bench)


def _reachable(ok: float | None, what: str) -> None:
    if ok is None:
        raise TimeoutError(f"{what}: no reply after {DEADLINE_S}s")


def vm_sender(bench: RoutedBench, vm: DemoVM, dst_ip: str, **receiver: str) -> Endpoints:
    """A VM sends to `dst_ip` through its subnet's gateway (the MAC its own kernel resolved for it)."""
    ns = bench.vm_ns(vm)
    gateway = bench.lab.vms()[vm.name]["gateway"]
    _reachable(ping_until(bench.lab, vm.name, dst_ip, DEADLINE_S), f"{vm.name} -> {dst_ip}")
    return Endpoints(sender_ns=ns, sender_dev=n.VM_IF, src_mac=mac_of(ns, n.VM_IF), src_ip=vm.ip,
                     dst_mac=neigh_mac(ns, n.VM_IF, gateway), dst_ip=dst_ip, **receiver)


def setup_dvr(bench: RoutedBench) -> Endpoints:
    src, dst = bench.vm("da", "h2", "net-a", "10.1.0.21"), bench.vm("db", "h2", "net-b", "10.2.0.21")
    return vm_sender(bench, src, dst.ip, receiver_ns=bench.vm_ns(dst), receiver_dev=n.VM_IF,
                     host_ns=bench.host_ns("h2"))


def setup_fip(bench: RoutedBench) -> Endpoints:
    return _fip_endpoints(bench, bench.vm("fb", "h3", "net-b", "10.2.0.31"))


def setup_fip_mixed(bench: RoutedBench) -> Endpoints:
    bench.vm("mc", "h4", "net-a", "10.1.0.32")  # no FIP: its egress goes to the SNAT host, mb's does not
    return _fip_endpoints(bench, bench.vm("mb", "h4", "net-b", "10.2.0.32"))


def _fip_endpoints(bench: RoutedBench, dst: DemoVM) -> Endpoints:
    """The internet sends to `dst`'s new floating IP."""
    fip = add_fip(bench.client, bench.cloud, dst.name)
    _reachable(ext_ping_until(bench.lab, fip, DEADLINE_S), f"internet -> {fip}")
    ext = bench.ext_ns
    return Endpoints(sender_ns=ext, sender_dev=n.EXT_BRIDGE, src_mac=mac_of(ext, n.EXT_BRIDGE),
                     src_ip=EXT_SERVER_IP, dst_mac=neigh_mac(ext, n.EXT_BRIDGE, fip), dst_ip=fip,
                     receiver_ns=bench.vm_ns(dst), receiver_dev=n.VM_IF, host_ns=bench.host_ns(dst.host))


def setup_fip_out(bench: RoutedBench) -> Endpoints:
    bench.vm("oc", "h4", "net-a", "10.1.0.34")  # no FIP: the split between the two is on ob's tap
    src = bench.vm("ob", "h4", "net-b", "10.2.0.33")
    add_fip(bench.client, bench.cloud, src.name)
    return vm_sender(bench, src, EXT_SERVER_IP, receiver_ns=bench.ext_ns, receiver_dev=n.EXT_BRIDGE,
                     host_ns=bench.host_ns(src.host))


def setup_snat(bench: RoutedBench) -> Endpoints:
    src = bench.vm("sa", "h1", "net-a", "10.1.0.41")
    return vm_sender(bench, src, EXT_SERVER_IP, receiver_ns=bench.ext_ns, receiver_dev=n.EXT_BRIDGE,
                     host_ns=bench.host_ns("h1"))


KVNET_DVR = register(KvnetRoutedPath(
    "kvnet-dvr", "dvr-ref", "kvnet distributed router, two subnets on one host", setup_dvr))
KVNET_FIP = register(KvnetRoutedPath(
    "kvnet-fip", "fip-ref", "internet -> floating IP on the VM's host (DVR fg- leg, stateless nft)", setup_fip))
KVNET_FIP_MIXED = register(KvnetRoutedPath(
    "kvnet-fip-mixed", "fip-ref", "kvnet-fip on a host that also has a VM without FIP", setup_fip_mixed))
KVNET_FIP_OUT = register(KvnetRoutedPath(
    "kvnet-fip-out", "fip-out-ref", "VM with FIP -> internet (its tap readdresses to the FIP namespace)",
    setup_fip_out))
KVNET_SNAT = register(KvnetRoutedPath(
    "kvnet-snat", "snat-ref", "VM without FIP -> SNAT on the network node -> internet", setup_snat))
ROUTED_PATHS = (KVNET_DVR.name, KVNET_FIP.name, KVNET_FIP_MIXED.name, KVNET_FIP_OUT.name, KVNET_SNAT.name)
