"""Readdress a floating IP holder's frames for a distributed router's gateway on its own tap.

A DVR compute host routes its VMs without FIP through the router's namespace (default: the SNAT host)
and the VMs with a FIP there through the router's FIP namespace (default: out of `fg-`). Every VM
resolves the same gateway IP to the same shared MAC, so the split is made on L2, where the frame
enters: an nft `netdev` ingress chain on each FIP holder's tap rewrites that MAC to the FIP
namespace's `fq-` leg MAC, and the bridge delivers it there. Only those taps get a chain, so no other
frame pays anything, and no router namespace needs a policy rule (which would cost every packet the
kernel's merged FIB lookup).

The table `netdev kvnet` in the host namespace is kvnet's. It is replaced as a whole, in one nft
transaction, when the digest in its comment differs from the desired one; chains are rendered only
for taps that exist (older kernels refuse a hook on a missing device), so a tap that appears later
changes the digest and the next pass adds its chain. The driver reconciles the table before the
router pass and again after the L2 pass (`desired_redirects`).
"""

from __future__ import annotations

from kvnet.agent.plan import HostPlan
from kvnet.dataplane.linux import nft_table
from kvnet.dataplane.linux.observe import tool
from kvnet.sys.cmd import run, run_json

TABLE = "kvnet"  # family netdev


def desired_redirects(plan: HostPlan, devices: set[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """tap -> ((gateway MAC, FIP namespace leg MAC), ...) for the plan's ports whose tap exists, and
    only towards legs whose host end exists: run before the router pass (which may delete a leg) and
    after the L2 pass (which plugs a new one), no frame is ever readdressed to a MAC nobody has."""
    leg_devices = plan.router_leg_devices()
    out = {}
    for port in plan.ports:
        pairs = tuple(pair for pair in port.gateway_redirects if leg_devices.get(pair[1]) in devices)
        if pairs and port.device in devices:
            out[port.device] = pairs
    return out


def render_table(redirects: dict[str, tuple[tuple[str, str], ...]]) -> tuple[str | None, str]:
    """(digest, the table's body); (None, "") when no tap needs a chain."""
    if not redirects:
        return None, ""
    lines = []
    for device, pairs in sorted(redirects.items()):
        lines += [f"  chain in-{device} {{",
                  f'    type filter hook ingress device "{device}" priority filter; policy accept;',
                  *(f"    ether daddr {gateway} ether daddr set {leg}" for gateway, leg in pairs), "  }"]
    body = "\n".join(lines)
    return nft_table.digest(body), body


def table_script(digest: str | None, body: str) -> str:
    """Replace the table in one transaction (or just delete it when nothing needs it)."""
    return nft_table.replace_script("netdev", TABLE, digest, body)


def plan_redirects(plan: HostPlan, host_netns: str | None) -> tuple[str | None, str] | None:
    """(desired digest, the nft script) for the next pass, or None when the table is as it should be."""
    wanted = {}
    if any(p.gateway_redirects for p in plan.ports):  # the link listing only where a tap may need a chain
        devices = {row["ifname"] for row in run_json([*tool("ip", host_netns), "-j", "link", "show"])}
        wanted = desired_redirects(plan, devices)
    digest, body = render_table(wanted)
    if nft_table.observe_digest("netdev", TABLE, host_netns) == digest:
        return None
    return digest, table_script(digest, body)


def pending(plan: HostPlan, host_netns: str | None) -> tuple[int, int]:
    """(stale, all) changes: the table replaced counts one; one that should not exist also counts stale."""
    change = plan_redirects(plan, host_netns)
    if change is None:
        return 0, 0
    return (1 if change[0] is None else 0), 1


def reconcile_gateway_redirects(plan: HostPlan, host_netns: str | None) -> tuple[bool, list[str]]:
    """(changed, errors)."""
    change = plan_redirects(plan, host_netns)
    if change is None:
        return False, []
    proc = run(["nft", "-f", "-"], netns=host_netns, input=change[1], check=False)
    return True, [] if proc.returncode == 0 else [f"nft (gateway redirects): {proc.stderr.strip()[:2000]}"]
