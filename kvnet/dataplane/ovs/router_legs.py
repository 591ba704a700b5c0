"""The host ends of router legs on an OVS host: plugged into kv-int like VM taps, brought up here.

The shared router pass (`kvnet.dataplane.linux.router.RouterDriver`) creates each leg as a veth pair
whose host end `kvt-<id>` is a port of the plan, so `render_db` puts it on kv-int with the network's
local VLAN like any VM port. A hypervisor brings a VM's tap up; for a leg kvnet is the hypervisor, so
every pass brings a leg's host end up if it is down (the Linux driver's L2 pass does the same with
`master ... up`). Level-triggered: observe the links, set up only those that are down.
"""

from __future__ import annotations

from kvnet.dataplane.linux.observe import tool
from kvnet.dataplane.manager import Pass
from kvnet.dataplane.result import PhaseResult
from kvnet.plan import HostPlan
from kvnet.sys.batch import run_batch
from kvnet.sys.cmd import CommandError, run_json
from kvnet.sys.runner import SYSTEM


def leg_devices(plan: HostPlan) -> set[str]:
    return {leg.device for router in plan.routers for leg in router.legs}


def down_legs(plan: HostPlan, host_netns: str | None) -> list[str]:
    devices = leg_devices(plan)
    if not devices:
        return []
    rows = run_json([*tool("ip", host_netns), "-j", "link", "show", "type", "veth"])
    return sorted(r["ifname"] for r in rows if r.get("ifname") in devices and "UP" not in r.get("flags", []))


def legs_up(plan: HostPlan, host_netns: str | None) -> tuple[int, dict[str, str]]:
    """Bring every planned leg's host end up; returns (how many were down, {device: error})."""
    down = down_legs(plan, host_netns)
    if not down:
        return 0, {}
    refused = run_batch(SYSTEM, tool("ip", host_netns), [f"link set dev {dev} up" for dev in down])
    return len(down), {down[index]: message for index, message in refused.items()}


class LegsUp:
    """After the router manager: the legs' host ends up (kvnet is their hypervisor)."""

    phase = "legs-up"

    def __init__(self, host_netns: str | None) -> None:
        self.host_netns = host_netns

    def reconcile(self, ctx: Pass) -> PhaseResult:
        result = PhaseResult(self.phase)
        by_device = {port.device: port.port_id for port in ctx.plan.ports}
        try:
            raised, refused = legs_up(ctx.plan, self.host_netns)
        except CommandError as exc:
            return result.unknown(str(exc), (by_device[d] for d in leg_devices(ctx.plan) if d in by_device))
        result.changed["leg"] = raised
        for device, message in sorted(refused.items()):
            result.fail("leg", device, message, [by_device[device]] if device in by_device else [])
        return result
