"""MACs pinned on their bridge port (static `master` FDB entries) where learning cannot be relied on.

VM ports with port security: the bridge does not learn on their taps (a VM sending from 20,000 random
MACs would otherwise make 20,000 entries); kvnet knows their MAC and their allowed address pairs'
MACs, and pins those.

Router legs: a distributed router has the same gateway MAC on every host. Tunnel ports never learn it
(learning is off with L2 population), and the host bridge must never have to flood a frame for it
either: a flooded frame would reach the SNAT host's and the other hosts' router instances, which would
all route it. So the bridge knows the gateway MAC is local from the moment the leg exists, not only
after the router namespace has sent a frame, and it never ages out.

FIP holders' taps: their routed frames are forwarded past the bridge (`gateway_redirect`), so only
their ARP and their frames to other VMs refresh the learned entry; a guest talking only to the
internet would see its entry age out and every frame for it flooded, out of the tunnels too.

Entries live on the port device and vanish with it; one on a kvnet port device that should not carry
it (another MAC, a FIP gone) is deleted. Pins go only on devices that exist (a tap the hypervisor
has not created yet gets its pin in a later pass). The entries are read by the L2 pass's own FDB dump
(`observe`), not by one of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kvnet.dataplane.linux.observe import tool
from kvnet.dataplane.linux.state import ObservedState
from kvnet.dataplane.result import PhaseResult
from kvnet.plan import HostPlan
from kvnet.sys.batch import run_batch

if TYPE_CHECKING:
    from kvnet.dataplane.linux.context import LinuxPass


@dataclass
class FdbPinChanges:
    add: list[tuple[str, str]] = field(default_factory=list)  # (device, mac)
    delete: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"fdb del {mac} dev {dev} master" for dev, mac in self.delete]
                + [f"fdb replace {mac} dev {dev} master static" for dev, mac in self.add])


def desired_pins(plan: HostPlan) -> set[tuple[str, str]]:
    legs = {(leg.device, leg.mac) for router in plan.routers for leg in router.legs}
    holders = {(port.device, port.mac) for port in plan.ports if port.gateway_redirects}
    known = {(port.device, mac) for port in plan.ports if not port.learning for mac in (port.mac, *port.extra_macs)}
    return legs | holders | known


def kvnet_port_devices(plan: HostPlan) -> set[str]:
    """Every bridge port kvnet owns here: where a static entry is kvnet's to keep or delete."""
    return {leg.device for router in plan.routers for leg in router.legs} | {port.device for port in plan.ports}


def diff_pins(want: set[tuple[str, str]], have: set[tuple[str, str]], present: set[str]) -> FdbPinChanges:
    """`have`: the static entries on kvnet's port devices; `present`: the devices that exist."""
    return FdbPinChanges(add=sorted(e for e in want - have if e[0] in present), delete=sorted(have - want))


def plan_pins(plan: HostPlan, observed: ObservedState, moved: set[str] | None = None) -> FdbPinChanges:
    """From the L2 pass's observation of this pass (taken after the router pass): a device it saw is
    attached by that pass if it was not yet; one created since gets its pin next pass. `moved`: devices
    that pass put on another bridge -- the kernel dropped their entries with the old bridge port."""
    devices = kvnet_port_devices(plan) - (moved or set())
    return diff_pins(desired_pins(plan), {pin for pin in observed.pins if pin[0] in devices}, set(observed.links))


def pending(plan: HostPlan, observed: ObservedState) -> tuple[int, int]:
    """(stale, all) changes: a pin to delete is stale."""
    changes = plan_pins(plan, observed)
    return len(changes.delete), len(changes.delete) + len(changes.add)


class PinnedFdb:
    """The pins, from the L2 manager's observation (so after it: a device it plugged gets its pin now)."""

    phase = "pinned-fdb"

    def reconcile(self, ctx: LinuxPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        by_device = {port.device: port.port_id for port in ctx.plan.ports}
        if ctx.observed is None:
            return result.unknown("the host's FDB was not read", {by_device[d] for d, _ in desired_pins(ctx.plan)
                                                                  if d in by_device})
        changes = plan_pins(ctx.plan, ctx.observed, ctx.moved)
        entries = changes.delete + changes.add
        refused = run_batch(ctx.runner, tool("bridge", ctx.netns), changes.lines()) if entries else {}
        for index, message in sorted(refused.items()):
            device, mac = entries[index]
            result.fail("pin", f"{mac} dev {device}", message, [by_device[device]] if device in by_device else [])
        result.added["pin"] = len(changes.add)
        result.removed["pin"] = len(changes.delete)
        return result
