"""Programming benchmark of the Linux port filters (issue #14): a host with 1,000 ports in security
groups -- programmed from nothing (goal <= 2 s), a no-op resync, one rule added, one remote-group
member added -- through the whole Linux driver pass, in a throw-away namespace `kvbf<random>`.

The ports are a compiled cloud's: every port in its project's default group (ingress from the group's
members: a 1,000-member remote group) and in a 10-rule group. Their taps do not exist: the filter
tables do not need them (chains are keyed by name), and the L2 pass only notes them missing.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from kvnet.agent.compile import compile_host
from kvnet.agent.model import CloudModel
from kvnet.dataplane.linux import LinuxDriver
from kvnet.model.resources import FixedIP, Host, Network, Port, SecurityGroup, SecurityGroupRule
from kvnet.plan import HostPlan
from kvnet.sys import netns

NS_PREFIX = "kvbf"
GOAL_PROGRAM_S = 2.0


def bench_model(ports: int, extra_rule: bool = False, extra_member: bool = False) -> CloudModel:
    net = Network(id="0f000000-0000-4000-8000-000000000001", segmentation_id=4242, mtu=1450, ct_zone=4242)
    default = SecurityGroup(id="0e000000-0000-4000-8000-000000000001", name="default")
    default.rules = [SecurityGroupRule(direction="ingress", remote_group_id=default.id),
                     SecurityGroupRule(direction="egress")]
    web = SecurityGroup(id="0e000000-0000-4000-8000-000000000002", name="web", rules=[
        SecurityGroupRule(direction="ingress", protocol="tcp", port_range_min=8000 + i) for i in range(10)])
    if extra_rule:
        web.rules = [*web.rules, SecurityGroupRule(direction="ingress", protocol="udp", port_range_min=53)]
    members = [_port(i, "h1", [default.id, web.id]) for i in range(ports)]
    if extra_member:
        members.append(_port(ports, "h2", [default.id]))
    return CloudModel.from_resources([Host(name="h1", tunnel_ip="192.0.2.1"), Host(name="h2", tunnel_ip="192.0.2.2"),
                                      net, default, web, *members])


def _port(i: int, host: str, groups: list[str]) -> Port:
    return Port(id=f"{i:08x}-0000-4000-8000-00000000bf00", network_id="0f000000-0000-4000-8000-000000000001",
                binding_host=host, mac_address=f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                fixed_ips=[FixedIP(subnet_id="s", ip_address=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")],
                security_group_ids=groups)


def _timed(driver: LinuxDriver, plan: HostPlan) -> tuple[float, int]:
    start = time.perf_counter()
    result = driver.reconcile(plan)
    if result.failures:
        raise RuntimeError(f"filter programming failed: {[str(f) for f in result.failures[:3]]}")
    return time.perf_counter() - start, result.total_changes


def run_filter_programming_bench(ports: int = 1000, repeats: int = 3) -> dict[str, Any]:
    plans = {what: compile_host("h1", bench_model(ports, **kw)) for what, kw in (
        ("base", {}), ("rule", {"extra_rule": True}), ("member", {"extra_member": True}))}
    empty = HostPlan("h1", "192.0.2.1", True, True)
    samples: dict[str, list[float]] = {"program_s": [], "noop_s": [], "rule_added_s": [], "member_added_s": []}
    noop_changes = 0
    ns = f"{NS_PREFIX}{uuid.uuid4().hex[:8]}"
    netns.add(ns)
    try:
        driver = LinuxDriver(ns)
        for _ in range(repeats):
            samples["program_s"].append(_timed(driver, plans["base"])[0])
            seconds, changes = _timed(driver, plans["base"])
            samples["noop_s"].append(seconds)
            noop_changes = max(noop_changes, changes)
            samples["rule_added_s"].append(_timed(driver, plans["rule"])[0])
            _timed(driver, plans["base"])
            samples["member_added_s"].append(_timed(driver, plans["member"])[0])
            _timed(driver, empty)
    finally:
        netns.delete(ns)
    medians = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    return {"ports": ports, "repeats": repeats, "filters": len(plans["base"].filters),
            "median": medians, "samples": {k: [round(x, 3) for x in v] for k, v in samples.items()},
            "noop_changes": noop_changes, "goal_program_s": GOAL_PROGRAM_S,
            "meets_goal": medians["program_s"] <= GOAL_PROGRAM_S and noop_changes == 0}


def markdown(data: dict[str, Any]) -> str:
    r = data["results"]
    m = r["median"]
    return "\n".join([
        "# filter_programming (Linux hosts)", "",
        f"- date: {data['date']}  kvnet {data['kvnet_version']}",
        f"- {r['ports']} ports in two groups (a {r['ports']}-member remote group, 10 rules), one host, the whole "
        f"Linux driver pass; medians of {r['repeats']}", "",
        "| pass | seconds |", "|---|---|",
        f"| program from nothing (goal <= {r['goal_program_s']} s) | {m['program_s']} |",
        f"| no-op resync ({r['noop_changes']} changes) | {m['noop_s']} |",
        f"| a rule added to the 10-rule group | {m['rule_added_s']} |",
        f"| a member added to the remote group | {m['member_added_s']} |", ""])
