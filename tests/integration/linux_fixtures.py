"""A small multi-host lab for the Linux driver tests, all in namespaces named `kvtD<run id>-...`.

Topology: an underlay namespace with a plain bridge `ul` (MTU 1550); per host a namespace with veth
`ul0` (tunnel IP 192.0.2.<n>/24) whose peer `h<n>` sits on the underlay bridge; per VM a namespace
with `eth0` whose host end is named `port_device_name(port_id)`. Plans are hand-built by
`build_plans` (no compiler exists yet): each host gets the networks it has ports in.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from kvnet.dataplane.linux import LinuxDriver
from kvnet.dataplane.linux.render import DEFAULT_ARP_MODE, ArpMode
from kvnet.plan import (
    HostPlan,
    NetworkPlan,
    PortPlan,
    RemoteEndpoint,
    bridge_name,
    port_device_name,
    tunnel_name,
)
from kvnet.sys import netns
from kvnet.sys.cmd import run

PREFIX = "kvtD"
UNDERLAY_MTU = 1550


@dataclass(frozen=True)
class Net:
    network_id: str
    vni: int
    mtu: int = 1500


@dataclass(frozen=True)
class Vm:
    port_id: str
    network_id: str
    host: int  # index into Lab.hosts
    ip: str
    mac: str


def uid(tag: str, n: int) -> str:
    """A UUID-shaped id, stable per (tag, n), unique in its first 10 hex digits (the device-name part)."""
    return f"{hashlib.sha1(tag.encode()).hexdigest()[:6]}{n:02x}00-0000-4000-8000-000000000000"


@dataclass
class Lab:
    run_id: str
    n_hosts: int
    hosts: list[str] = field(default_factory=list)
    underlay: str = ""
    vms: dict[str, str] = field(default_factory=dict)  # port id -> namespace

    def tunnel_ip(self, host: int) -> str:
        return f"192.0.2.{host + 1}"

    def ns(self, role: str) -> str:
        return f"{PREFIX}{self.run_id}-{role}"

    def build(self) -> None:
        self.underlay = self.ns("u")
        netns.add(self.underlay)
        run(["ip", "-n", self.underlay, "link", "add", "ul", "mtu", str(UNDERLAY_MTU), "type", "bridge"])
        run(["ip", "-n", self.underlay, "link", "set", "ul", "up"])
        for i in range(self.n_hosts):
            host = self.ns(f"h{i + 1}")
            netns.add(host)
            netns.add_veth(f"h{i + 1}", self.underlay, "ul0", host, mtu=UNDERLAY_MTU)
            run(["ip", "-n", self.underlay, "link", "set", f"h{i + 1}", "master", "ul"])
            # netns.add_veth's mtu only reaches end `a`; the host end needs its own.
            run(["ip", "-n", host, "link", "set", "ul0", "mtu", str(UNDERLAY_MTU)])
            run(["ip", "-n", host, "addr", "add", f"{self.tunnel_ip(i)}/24", "dev", "ul0"])
            self.hosts.append(host)

    def add_vm(self, vm: Vm, mtu: int) -> None:
        name = self.ns(f"v{len(self.vms)}")
        netns.add(name)
        netns.add_veth("eth0", name, port_device_name(vm.port_id), self.hosts[vm.host], mtu=mtu)
        run(["ip", "-n", name, "link", "set", "eth0", "address", vm.mac])
        run(["ip", "-n", name, "addr", "add", f"{vm.ip}/24", "dev", "eth0"])
        self.vms[vm.port_id] = name

    def destroy(self) -> None:
        netns.delete_with_prefix(f"{PREFIX}{self.run_id}")


@contextmanager
def lab(n_hosts: int = 3) -> Iterator[Lab]:
    the_lab = Lab(uuid.uuid4().hex[:6], n_hosts)
    try:
        the_lab.build()
        yield the_lab
    finally:
        the_lab.destroy()


def build_plans(lab: Lab, nets: list[Net], vms: list[Vm], *, l2pop: bool = True,
                arp_responder: bool = True) -> list[HostPlan]:
    """One HostPlan per host: the networks it has ports in, flooding to the other hosts that do."""
    plans = []
    for host in range(lab.n_hosts):
        networks, ports = [], []
        for net in nets:
            members = [vm for vm in vms if vm.network_id == net.network_id]
            if not any(vm.host == host for vm in members):
                continue
            remote = [vm for vm in members if vm.host != host]
            networks.append(NetworkPlan(
                net.network_id, "vxlan", net.vni, net.mtu, bridge_name(net.network_id),
                tunnel_name(net.network_id), None,
                flood_to=tuple(sorted({lab.tunnel_ip(vm.host) for vm in remote})),
                remotes=tuple(RemoteEndpoint(vm.mac, (vm.ip,), lab.tunnel_ip(vm.host))
                              for vm in remote) if l2pop else (),
                arp_entries=tuple((vm.ip, vm.mac) for vm in remote) if arp_responder else ()))
            ports += [PortPlan(vm.port_id, vm.network_id, vm.mac, (vm.ip,), port_device_name(vm.port_id),
                               net.mtu) for vm in members if vm.host == host]
        plans.append(HostPlan(f"host{host + 1}", lab.tunnel_ip(host), l2pop, arp_responder,
                              tuple(networks), tuple(ports)))
    return plans


def reconcile_all(the_lab: Lab, plans: list[HostPlan], arp_mode: ArpMode = DEFAULT_ARP_MODE) -> int:
    """Reconcile every host with a fresh driver; return the total number of changes made."""
    total = 0
    for host_ns, plan in zip(the_lab.hosts, plans, strict=True):
        result = LinuxDriver(host_ns, arp_mode).reconcile(plan)
        assert result.ok, result.errors
        total += result.total_changes
    return total


# The standard topology: two vxlan networks with the same CIDR on three hosts.
NET_A = Net(uid("neta", 1), 1001)
NET_B = Net(uid("netb", 2), 1002)  # same CIDR 10.0.0.0/24 as NET_A
VMS = [
    Vm(uid("porta", 1), NET_A.network_id, 0, "10.0.0.1", "fa:16:3e:0a:00:01"),
    Vm(uid("porta", 2), NET_A.network_id, 1, "10.0.0.2", "fa:16:3e:0a:00:02"),
    Vm(uid("portb", 1), NET_B.network_id, 0, "10.0.0.5", "fa:16:3e:0b:00:05"),
    Vm(uid("portb", 2), NET_B.network_id, 2, "10.0.0.1", "fa:16:3e:0b:00:01"),  # a1's IP, other net
]


def ping(ns: str, ip: str, *, count: int = 1, size: int | None = None, dont_fragment: bool = False,
         wait_s: float = 1.0) -> bool:
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(wait_s), ip]
    if size is not None:
        argv[1:1] = ["-s", str(size)]
    if dont_fragment:
        argv[1:1] = ["-M", "do"]
    return run(argv, netns=ns, check=False, timeout=30).returncode == 0


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return bool(condition())


class Capture:
    """tcpdump in a namespace, counting packets that match a BPF filter; `stop()` returns the count.

    Its stderr goes to a temporary file that we poll for "listening on" (tcpdump is ready) and,
    after SIGINT, for "N packets captured" (one packet may print several lines, e.g. VXLAN).
    """

    def __init__(self, ns: str, iface: str, bpf: str) -> None:
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed by stop()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "tcpdump", "-i", iface, "-nn", "--immediate-mode", "-q", bpf],
            stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True)
        if not wait_for(lambda: "listening on" in self._stderr(), timeout_s=10):
            self.stop()
            raise RuntimeError(f"tcpdump did not start: {self._stderr()}")

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)  # only our own process, by pid
        self.proc.wait(timeout=10)
        found = re.search(r"(\d+) packets? captured", self._stderr())
        self._log.close()
        if found is None:
            raise RuntimeError("tcpdump printed no packet count")
        return int(found.group(1))


@contextmanager
def capture(ns: str, iface: str, bpf: str) -> Iterator[Capture]:
    cap = Capture(ns, iface, bpf)
    try:
        yield cap
    finally:
        if cap.proc.poll() is None:
            cap.stop()


# BPF on the underlay: offsets are into the outer UDP header (8) + VXLAN header (8) + inner Ethernet.
VXLAN = "udp dst port 4789"
INNER_ARP = f"{VXLAN} and udp[28:2] = 0x0806"
INNER_BROADCAST = f"{VXLAN} and udp[16:4] = 0xffffffff and udp[20:2] = 0xffff"


def vni_filter(vni: int) -> str:
    return f"{VXLAN} and udp[12:4] = {vni << 8:#x}"
