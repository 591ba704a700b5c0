"""Programming benchmark of the Linux driver: how fast a plan's FDB + neighbour entries reach the
kernel (goal >= 20,000 objects/s) and how long a no-op resync of that much state takes (goal <= 1 s).

Runs in its own throw-away namespace `kvbp<random>`; nothing else is touched. The plan is what
L2 population gives a host with `entries` remote ports spread over several VXLAN networks: one
unicast FDB entry and one permanent neighbour entry per remote port, i.e. 2 x `entries` objects.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from kvnet.dataplane.linux import LinuxDriver
from kvnet.plan import HostPlan, NetworkPlan, RemoteEndpoint, bridge_name, tunnel_name
from kvnet.sys import netns

NS_PREFIX = "kvbp"
PORTS_PER_NETWORK = 1000
REMOTE_HOSTS = 50
GOAL_OBJECTS_PER_S = 20_000
GOAL_NOOP_S = 1.0


def bench_plan(entries: int) -> HostPlan:
    """A host with `entries` remote ports (unique MAC and IP each) in ceil(entries/1000) networks."""
    networks = []
    for n, first in enumerate(range(0, entries, PORTS_PER_NETWORK)):
        net_id = f"{n + 1:08x}-0000-4000-8000-00000000be7c"
        remotes = tuple(
            RemoteEndpoint(f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                           (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",), f"192.0.2.{2 + i % REMOTE_HOSTS}")
            for i in range(first, min(first + PORTS_PER_NETWORK, entries)))
        networks.append(NetworkPlan(
            net_id, "vxlan", 5000 + n, 1450, bridge_name(net_id), tunnel_name(net_id), None,
            flood_to=tuple(sorted({r.tunnel_ip for r in remotes})), remotes=remotes,
            arp_entries=tuple((r.ips[0], r.mac) for r in remotes)))
    return HostPlan("bench", "192.0.2.1", True, True, tuple(networks))


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_programming_bench(entries: int = 10_000, repeats: int = 3) -> dict[str, Any]:
    """Per repeat: program the plan on an empty namespace, then a no-op resync, then remove it all."""
    plan = bench_plan(entries)
    empty = HostPlan(plan.host, plan.tunnel_ip, True, True)
    ns = f"{NS_PREFIX}{uuid.uuid4().hex[:8]}"
    apply_s, rates, noop_s, remove_s = [], [], [], []
    objects = noop_changes = 0
    netns.add(ns)
    try:
        driver = LinuxDriver(ns)
        for _ in range(repeats):
            seconds, result = _timed(lambda: driver.reconcile(plan))
            if not result.ok:
                raise RuntimeError(f"programming failed: {result.errors[:3]}")
            objects = result.added["fdb"] + result.added["neigh"]
            apply_s.append(seconds)
            rates.append(objects / seconds)
            seconds, result = _timed(lambda: driver.reconcile(plan))
            noop_s.append(seconds)
            noop_changes = max(noop_changes, result.total_changes)
            seconds, _ = _timed(lambda: driver.reconcile(empty))
            remove_s.append(seconds)
    finally:
        netns.delete(ns)
    return {
        "entries": entries,
        "repeats": repeats,
        "objects": objects,
        "apply_s": _spread(apply_s),
        "objects_per_s": _spread(rates),
        "noop_resync_s": _spread(noop_s),
        "noop_changes": noop_changes,
        "remove_s": _spread(remove_s),
        "goals": {"objects_per_s": GOAL_OBJECTS_PER_S, "noop_resync_s": GOAL_NOOP_S},
        "meets_goals": statistics.median(rates) >= GOAL_OBJECTS_PER_S
        and statistics.median(noop_s) <= GOAL_NOOP_S,
    }
