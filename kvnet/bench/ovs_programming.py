"""Programming benchmark of the OVS driver: the flows for N VM ports on one host, and a no-op resync.

Runs in a throw-away namespace `kvbo<random>` with its own ovsdb-server + ovs-vswitchd (userspace
datapath, run directory under /tmp); nothing else is touched. The host has `ports` VM ports (veth
devices, as a hypervisor would create taps) in VXLAN networks of 100 ports each, and every network
also has 100 remote ports on 20 other hosts (L2 population + ARP responder flows).

With `groups`, every port also has port security and a filter (`security_plan`): 10 rules, one of them
from a remote group whose members are every port here and every remote port (2 x `ports` addresses).

Per repeat, measured with `OvsDriver.reconcile`:
- `cold_s`: empty host -> everything (OVSDB ports in one transaction, then the flows in one bundle);
- `flows_s`: the ports stay, kvnet's flows are deleted by hand -> reinstalled (the vswitchd-restart case);
- `noop_s`: a second pass that finds nothing to do (observe the IDL + dump the flows + diff);
- with groups, `member_s`: a member added to the remote group; `rule_s`: a rule added to every port;
- `remove_s`: back to the empty plan.

    python -m kvnet.bench.ovs_programming [ports] [repeats] [groups]
    # writes bench/results/ovs_programming.json (ovs_programming_groups.json with groups)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from kvnet.bench.results import envelope, summarize, write_result
from kvnet.dataplane import ReconcileResult
from kvnet.dataplane.ovs import OvsDriver, openflow
from kvnet.dataplane.ovs.state import INT_BRIDGE, OWNED_COOKIE_MATCH
from kvnet.lab import ovs
from kvnet.lab.procs import Supervisor
from kvnet.lab.state import StateFile
from kvnet.plan import HostPlan, NetworkPlan, PortPlan, RemoteEndpoint, bridge_name, port_device_name
from kvnet.plan.security import AddressSet, PortFilter, RuleMatch
from kvnet.sys import netns
from kvnet.sys.cmd import run

NS_PREFIX = "kvbo"
PORTS_PER_NETWORK = 100
REMOTES_PER_NETWORK = 100
REMOTE_HOSTS = 20
GROUP = "bench-members"
RULES = (RuleMatch("egress", "IPv4"), RuleMatch("ingress", "IPv4", 1, icmp_type=8),
         *(RuleMatch("ingress", "IPv4", 6, port, port) for port in (22, 80, 443)),
         RuleMatch("ingress", "IPv4", 6, 8000, 8080), RuleMatch("ingress", "IPv4", 17, 53, 53),
         RuleMatch("ingress", "IPv4", 17, 5000, 5999, remote_prefix="10.200.0.0/16"),
         RuleMatch("ingress", "IPv4", 47), RuleMatch("ingress", "IPv4", 6, 5432, 5432, remote_group=GROUP))


def _uuid(kind: int, i: int) -> str:
    return f"{kind:02x}{i:06x}00-0000-4000-8000-00000000be7c"


def bench_plan(ports: int) -> HostPlan:
    networks, port_plans = [], []
    for n, first in enumerate(range(0, ports, PORTS_PER_NETWORK)):
        net_id = _uuid(1, n)
        remotes = tuple(RemoteEndpoint(f"fa:16:3f:{n:02x}:{r >> 8:02x}:{r & 255:02x}", (f"10.{n}.1.{r}",),
                                       f"192.0.2.{2 + r % REMOTE_HOSTS}") for r in range(REMOTES_PER_NETWORK))
        local = range(first, min(first + PORTS_PER_NETWORK, ports))
        port_plans += [PortPlan(_uuid(2, i), net_id, f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                                (f"10.{n}.0.{i - first + 1}",), port_device_name(_uuid(2, i)), 1450) for i in local]
        arp = tuple((r.ips[0], r.mac) for r in remotes) + tuple((p.ips[0], p.mac) for p in port_plans[-len(local):])
        networks.append(NetworkPlan(net_id, "vxlan", 5000 + n, 1450, bridge_name(net_id), None, None,
                                    flood_to=tuple(sorted({r.tunnel_ip for r in remotes})), remotes=remotes,
                                    arp_entries=arp))
    return HostPlan("bench", "192.0.2.1", True, True, tuple(networks), tuple(port_plans))


def security_plan(plan: HostPlan, extra_rule: bool = False, extra_member: bool = False) -> HostPlan:
    """`plan` with every port filtered by RULES (and one more rule), the group's members: every port here
    and every remote port (and one more)."""
    zones = {net.network_id: i + 1 for i, net in enumerate(plan.networks)}
    rules = RULES + ((RuleMatch("ingress", "IPv4", 6, 9090, 9090),) if extra_rule else ())
    filters = tuple(PortFilter(p.port_id, p.device, p.network_id, zones[p.network_id], p.mac,
                               ((f"{p.ips[0]}/32", p.mac),), (p.mac,), rules) for p in plan.ports)
    members = [f"{p.ips[0]}/32" for p in plan.ports] + [f"{r.ips[0]}/32" for n in plan.networks for r in n.remotes]
    members += ["10.250.0.1/32"] if extra_member else []
    return replace(plan, filters=filters, address_sets=(AddressSet(GROUP, tuple(sorted(members))),))


def _create_devices(ns: str, plan: HostPlan) -> None:
    """The hypervisor's part: one veth per port (the peer stays in the namespace, down)."""
    lines = [f"link add {p.device} mtu {p.mtu} type veth peer name {p.device.replace('kvt-', 'kvq-')}"
             for p in plan.ports] + [f"link set {p.device} up" for p in plan.ports]
    run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n", timeout=300)


def _timed(fn: Callable[[], ReconcileResult]) -> tuple[float, ReconcileResult]:
    start = time.perf_counter()
    result = fn()
    if not result.ok:
        raise RuntimeError(f"reconcile failed: {result.errors[:3]}")
    return time.perf_counter() - start, result


def run_ovs_programming_bench(ports: int = 1000, repeats: int = 3, groups: bool = False) -> dict[str, Any]:
    plan = security_plan(bench_plan(ports)) if groups else bench_plan(ports)
    empty = HostPlan(plan.host, plan.tunnel_ip, True, True)
    ns = f"{NS_PREFIX}{uuid.uuid4().hex[:8]}"
    rundir = Path(tempfile.mkdtemp(prefix=NS_PREFIX, dir="/tmp"))
    procs = Supervisor(StateFile(rundir))
    samples: dict[str, list[float]] = {"cold_s": [], "flows_s": [], "noop_s": [], "remove_s": []}
    if groups:
        samples |= {"member_s": [], "rule_s": []}
    flows = noop_changes = 0
    netns.add(ns)
    try:
        inst = ovs.start(procs, "bench", ns, rundir / "ovs")
        _create_devices(ns, plan)
        with OvsDriver(inst.rundir, host_netns=ns, datapath_type=ovs.DATAPATH, timeout=300) as driver:
            for _ in range(repeats):
                seconds, result = _timed(lambda: driver.reconcile(plan))
                if result.missing_ports:
                    raise RuntimeError(f"{len(result.missing_ports)} ports got no ofport")
                samples["cold_s"].append(seconds)
                flows = result.added["flow"]
                run([*openflow.OFCTL, "del-flows", openflow.target(inst.rundir, INT_BRIDGE), OWNED_COOKIE_MATCH])
                samples["flows_s"].append(_timed(lambda: driver.reconcile(plan))[0])
                seconds, result = _timed(lambda: driver.reconcile(plan))
                samples["noop_s"].append(seconds)
                noop_changes = max(noop_changes, result.total_changes)
                if groups:
                    samples["member_s"].append(_timed(lambda: driver.reconcile(
                        security_plan(plan, extra_member=True)))[0])
                    samples["rule_s"].append(_timed(lambda: driver.reconcile(
                        security_plan(plan, extra_rule=True, extra_member=True)))[0])
                samples["remove_s"].append(_timed(lambda: driver.reconcile(empty))[0])
    finally:
        procs.stop_all()
        netns.delete(ns)
        shutil.rmtree(rundir, ignore_errors=True)
    flows_median = summarize(samples["flows_s"])["median"] or 0.0
    return {
        "ports": ports, "networks": len(plan.networks), "repeats": repeats, "flows": flows,
        "remote_ports": sum(len(n.remotes) for n in plan.networks),
        **{key: summarize(values) for key, values in samples.items()},
        "flows_per_s": round(flows / flows_median) if flows_median else None,
        "noop_changes": noop_changes,
        "datapath": ovs.DATAPATH,
        "filtered_ports": len(plan.filters),
        "group_members": sum(len(s.v4) for s in plan.address_sets),
    }


PASSES = (("cold_s", "empty host -> everything (OVSDB ports and flows)"),
          ("flows_s", "ports there, every flow (what a vswitchd restart needs)"), ("noop_s", "no-op resync"),
          ("member_s", "a member added to the remote group"), ("rule_s", "a rule added to every port"),
          ("remove_s", "everything removed"))


def markdown(data: dict[str, Any]) -> str:
    r = data["results"]
    lines = [f"# {data['benchmark']} (OVS hosts, {r['datapath']} datapath)", "",
             f"- date: {data['date']}  kvnet {data['kvnet_version']}",
             f"- {r['ports']} ports in {r['networks']} networks, {r['remote_ports']} remote ports, "
             f"{r['filtered_ports']} of them filtered, {r['group_members']} remote-group members; {r['flows']} flows; "
             f"medians of {r['repeats']}, no-op changes: {r['noop_changes']}", "",
             "| pass | seconds |", "|---|---|"]
    lines += [f"| {what} | {r[key]['median']:.2f} |" for key, what in PASSES if key in r]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    ports = int(argv[0]) if argv else 1000
    repeats = int(argv[1]) if len(argv) > 1 else 3
    groups = len(argv) > 2 and argv[2] == "groups"
    name = "ovs_programming_groups" if groups else "ovs_programming"
    data = envelope(name, run_ovs_programming_bench(ports, repeats, groups))
    write_result(name, data, markdown=markdown(data))
    print(json.dumps(data["results"], indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
