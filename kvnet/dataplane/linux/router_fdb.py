"""Pin each router leg's MAC to its host end on the bridge (a static `master` FDB entry).

A distributed router has the same gateway MAC on every host. Tunnel ports never learn it (learning is
off with L2 population), and the host bridge must never have to flood a frame for it either: a flooded
frame would reach the SNAT host's and the other hosts' router instances, which would all route it. So
the bridge knows the gateway MAC is local from the moment the leg exists, not only after the router
namespace has sent a frame, and it never ages out. Entries live on the leg's host device and vanish
with it; one on a leg device with another MAC is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvnet.agent.plan import HostPlan
from kvnet.dataplane.linux.observe import tool
from kvnet.sys.cmd import run, run_json


@dataclass
class LegFdbChanges:
    add: list[tuple[str, str]] = field(default_factory=list)  # (device, mac)
    delete: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"fdb del {mac} dev {dev} master" for dev, mac in self.delete]
                + [f"fdb replace {mac} dev {dev} master static" for dev, mac in self.add])


def desired_leg_fdb(plan: HostPlan) -> set[tuple[str, str]]:
    return {(leg.device, leg.mac) for router in plan.routers for leg in router.legs}


def diff_leg_fdb(want: set[tuple[str, str]], have: set[tuple[str, str]]) -> LegFdbChanges:
    devices = {dev for dev, _ in want}
    return LegFdbChanges(add=sorted(want - have), delete=sorted(e for e in have - want if e[0] in devices))


def observe_leg_fdb(host_netns: str | None, devices: set[str]) -> set[tuple[str, str]]:
    rows = run_json([*tool("bridge", host_netns), "-j", "fdb", "show"])
    return {(r["ifname"], r["mac"]) for r in rows
            if r.get("ifname") in devices and r.get("state") == "static" and "master" in r}


def reconcile_leg_fdb(plan: HostPlan, host_netns: str | None) -> tuple[LegFdbChanges, list[str]]:
    want = desired_leg_fdb(plan)
    changes = diff_leg_fdb(want, observe_leg_fdb(host_netns, {dev for dev, _ in want}) if want else set())
    lines = changes.lines()
    if not lines:
        return changes, []
    proc = run([*tool("bridge", host_netns), "-force", "-batch", "-"], input="\n".join(lines) + "\n", check=False)
    return changes, [] if proc.returncode == 0 else [f"bridge -batch (leg MACs): {proc.stderr.strip()[:2000]}"]
