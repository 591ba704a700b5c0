"""`kvnet lab demo`: a whole cloud in namespaces, measured.

Lab up (3 hosts, server + one agent per host) -> two tenant networks in different projects with
the same CIDR, a VM of each on every host -> convergence (port create -> first ping) -> a full
reachability matrix while the underlay is captured, counting ARP inside the tunnels (tenants', 0 with
the ARP responder) apart from the hosts' own ARP for tunnel IPs (`kvnet.lab.arp_census`) -> lab down.

Lab VMs retry ARP every 20 ms (`kvnet.lab.vm`), as often as `ping_until` pings, so the convergence
figure is kvnet's (when every host knows the new port), not the guest kernel's 1 s ARP retry.

Inside one CIDR the two networks use distinct addresses (.1x and .2x), so a ping that crosses
networks can only succeed through a leak, never by reaching a same-address VM of its own network.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.arp_census import ArpCensus
from kvnet.lab.lab import Lab
from kvnet.lab.probe import arp_capture, ping_until
from kvnet.lab.spec import default_spec
from kvnet.lab.vm import create_vm, nic_up
from kvnet.sys.cmd import in_netns

Progress = Callable[[str], None]
CONVERGE_DEADLINE_S = 10.0
TENANTS = (("blue", "10.10.0.0/24", 10), ("red", "10.10.0.0/24", 20))


@dataclass(frozen=True)
class DemoVM:
    name: str
    host: str
    network: str
    ip: str


@dataclass
class DemoResult:
    hosts: list[str]
    vms: list[DemoVM]
    converge_ms: list[float] = field(default_factory=list)
    reachable: list[tuple[str, str]] = field(default_factory=list)
    expected: list[tuple[str, str]] = field(default_factory=list)
    leaks: list[tuple[str, str]] = field(default_factory=list)
    arp: ArpCensus = field(default_factory=ArpCensus)

    def to_json(self) -> dict[str, Any]:
        ms = sorted(self.converge_ms)
        return {
            "hosts": self.hosts,
            "vms": [vars(v) for v in self.vms],
            "reachable_pairs": len(self.reachable),
            "expected_reachable_pairs": len(self.expected),
            "missing_pairs": [list(p) for p in self.expected if p not in self.reachable],
            "isolation_leaks": len(self.leaks),
            "leaked_pairs": [list(p) for p in self.leaks],
            "tenant_arp_in_tunnels": self.arp.tenant_arp_in_tunnels,
            "underlay_host_arp": self.arp.underlay_host_arp,
            "converge_ms_p50": round(statistics.median(ms), 1) if ms else None,
            "converge_ms_p99": round(_percentile(ms, 99), 1) if ms else None,
            "converge_samples": len(ms),
        }


def _percentile(sorted_values: list[float], pct: float) -> float:
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1))))
    return sorted_values[rank]


def run_demo(name: str = "kvdemo", hosts: int = 3, progress: Progress = lambda _: None,
             store: str = "sqlite") -> dict[str, Any]:
    """`store` etcd: a 3-member etcd cluster and two API servers instead of one server on SQLite."""
    lab = Lab(name)
    servers = "a 3-member etcd cluster, two API servers" if store == "etcd" else "API server"
    progress(f"lab {name}: {hosts} hosts, {servers}, one agent per host")
    lab.up(default_spec(name, hosts), control_plane=True, store=store)
    try:
        with Client(control.server_url(lab)) as client:
            result = _scenario(lab, client, progress)
        extra: dict[str, Any] = {"store": store}
        if store == "etcd":
            from kvnet.lab.etcd import lab_cluster

            cluster = lab_cluster(lab)
            leader = cluster.leader()
            extra["etcd_members"] = [{"name": m.name, "client_url": m.client_url, "peer_url": m.peer_url,
                                      "leader": m == leader} for m in cluster.members]
    finally:
        progress(f"lab {name}: down")
        lab.down()
    return {**result.to_json(), **extra}


def _scenario(lab: Lab, client: Client, progress: Progress) -> DemoResult:
    host_names = sorted(lab.hosts())
    result = DemoResult(hosts=host_names, vms=[])
    for tenant, cidr, base in TENANTS:
        network = client.create("networks", {"name": f"{tenant}-net", "project_id": tenant})
        client.create("subnets", {"name": f"{tenant}-sub", "network_id": network["id"], "cidr": cidr,
                                  "project_id": tenant})
        first: DemoVM | None = None
        for i, host in enumerate(host_names, start=1):
            vm = DemoVM(f"{tenant}{i}", host, f"{tenant}-net", str(_host_ip(cidr, base + i)))
            progress(f"VM {vm.name} on {host} ({vm.network}, {vm.ip})")
            started = time.monotonic()
            boot_vm(lab, client, vm)
            if first is not None:
                reply_ms = ping_until(lab, vm.name, first.ip, CONVERGE_DEADLINE_S)
                if reply_ms is not None:
                    result.converge_ms.append((time.monotonic() - started) * 1000)
            first = first or vm
            result.vms.append(vm)
    progress(f"reachability matrix over {len(result.vms)} VMs, capturing the underlay")
    with arp_capture(lab) as capture:
        outcome = ping_matrix(lab, result.vms)
    result.arp = capture.arp_census()
    for (src, dst), ok in outcome.items():
        same = src.network == dst.network
        pair = (src.name, dst.name)
        if same:
            result.expected.append(pair)
        if ok:
            (result.reachable if same else result.leaks).append(pair)
    return result


def _host_ip(cidr: str, offset: int) -> Any:
    import ipaddress

    return ipaddress.ip_network(cidr).network_address + offset


def boot_vm(lab: Lab, client: Client, vm: DemoVM, **port_fields: Any) -> dict[str, Any]:
    """What Nova does: a port bound to the host, the VM created paused with its NIC on that port, and
    resumed once the agent reports the port ACTIVE (Neutron's vif-plugged event). `port_fields`: more
    of the port's (security groups, port security, allowed address pairs)."""
    network = client.find("networks", vm.network)
    port = client.create("ports", {"name": vm.name, "network_id": network["id"], "binding_host": vm.host,
                                   "project_id": network["project_id"], "fixed_ips": [{"ip_address": vm.ip}],
                                   **port_fields})
    subnet = client.get("subnets", port["fixed_ips"][0]["subnet_id"])
    record = create_vm(lab, vm.name, vm.host, port, subnet, network["mtu"], nic_up=False)
    wait_port_active(client, port["id"], CONVERGE_DEADLINE_S)
    nic_up(lab, vm.name)
    return record


def wait_port_active(client: Client, port_id: str, deadline_s: float) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    while True:
        port = client.get("ports", port_id)
        if port["status"] == "ACTIVE":
            return port
        if time.monotonic() > end:
            raise TimeoutError(f"port {port_id} not ACTIVE after {deadline_s}s (status {port['status']})")
        time.sleep(0.01)


def ping_matrix(lab: Lab, vms: list[DemoVM]) -> dict[tuple[DemoVM, DemoVM], bool]:
    """Ping every ordered pair at once (each ping in its VM's namespace) and collect the outcomes."""
    procs = {}
    for src in vms:
        for dst in vms:
            if src is not dst:
                argv = in_netns(["ping", "-c", "3", "-i", "0.2", "-W", "1", "-q", dst.ip], n.vm_ns(lab.name, src.name))
                procs[(src, dst)] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {pair: proc.wait(timeout=30) == 0 for pair, proc in procs.items()}


def render_table(data: dict[str, Any]) -> str:
    lines = [
        f"hosts: {', '.join(data['hosts'])}",
        "VMs:   " + ", ".join(f"{v['name']}@{v['host']} {v['ip']}" for v in data["vms"]),
        f"reachable pairs:          {data['reachable_pairs']} / {data['expected_reachable_pairs']} expected",
        f"isolation leaks:          {data['isolation_leaks']}",
        f"tenant ARP in tunnels:    {data['tenant_arp_in_tunnels']}",
        f"underlay host ARP:        {data['underlay_host_arp']} (hosts resolving tunnel IPs)",
        f"converge p50 / p99 (ms):  {data['converge_ms_p50']} / {data['converge_ms_p99']} "
        f"({data['converge_samples']} ports: create -> first ping)",
    ]
    return "\n".join(lines)
