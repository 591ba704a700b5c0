"""The host ends of router legs on an OVS host: plugged into kv-int like VM taps, brought up here.

The shared router pass (`kvnet.dataplane.linux.router.RouterDriver`) creates each leg as a veth pair
whose host end `kvt-<id>` is a port of the plan, so `render_db` puts it on kv-int with the network's
local VLAN like any VM port. A hypervisor brings a VM's tap up; for a leg kvnet is the hypervisor, so
every pass brings a leg's host end up if it is down (the Linux driver's L2 pass does the same with
`master ... up`). Level-triggered: observe the links, set up only those that are down.
"""

from __future__ import annotations

from kvnet.dataplane.linux.observe import tool
from kvnet.plan import HostPlan
from kvnet.sys.cmd import run, run_json


def leg_devices(plan: HostPlan) -> set[str]:
    return {leg.device for router in plan.routers for leg in router.legs}


def down_legs(plan: HostPlan, host_netns: str | None) -> list[str]:
    devices = leg_devices(plan)
    if not devices:
        return []
    rows = run_json([*tool("ip", host_netns), "-j", "link", "show", "type", "veth"])
    return sorted(r["ifname"] for r in rows if r.get("ifname") in devices and "UP" not in r.get("flags", []))


def legs_up(plan: HostPlan, host_netns: str | None) -> tuple[int, list[str]]:
    """Bring every planned leg's host end up; returns (how many were down, errors)."""
    down = down_legs(plan, host_netns)
    if not down:
        return 0, []
    lines = "".join(f"link set dev {dev} up\n" for dev in down)
    proc = run([*tool("ip", host_netns), "-force", "-batch", "-"], input=lines, check=False)
    return len(down), [] if proc.returncode == 0 else [f"ip -batch (legs up): {proc.stderr.strip()[:2000]}"]
