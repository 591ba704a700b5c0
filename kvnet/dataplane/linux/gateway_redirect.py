"""Send a floating IP holder's routed frames straight to its distributed router's FIP namespace.

A DVR compute host routes its VMs without FIP through the router's namespace (default: the SNAT host)
and the VMs with a FIP there through the router's FIP namespace (default: out of `fg-`). Every VM
resolves the same gateway IP to the same shared MAC, so the split is made on L2, where the frame
enters: an nft `netdev` ingress chain on each FIP holder's tap takes its IPv4 frames for that MAC,
readdresses them to the FIP namespace's `fq-` leg and forwards them out of the leg's host end
(`fwd`), past the bridge. Only those taps get a chain, so no other frame pays anything, and no router
namespace needs a policy rule (which would cost every packet the kernel's merged FIB lookup).

Why `fwd`: the hook itself is the cost, not the rewrite (an A/B with a chain whose rule never matches
costs as much as the rewrite, 0.91-0.98 of the same path without a chain); skipping the bridge's
forwarding pays it back (1.05; `kvnet bench dataplane --paths fip-out-ref,fip-out-tap-ref,fip-out-hook-ref`). ARP is
left to the bridge: a guest re-checking its cached gateway by unicast ARP must reach the router's own
leg, which holds the gateway IP (the `fq-` leg has no address and would never answer). As the
holder's IP frames no longer refresh the bridge's learned entry for its MAC, that MAC is pinned on the
tap (`pinned_fdb`), or the answers would be flooded once it aged out.

The table `netdev kvnet` in the host namespace is kvnet's. It is replaced as a whole, in one nft
transaction, when the digest in its comment differs from the desired one; chains are rendered only
for taps that exist (older kernels refuse a hook on a missing device), so a tap that appears later
changes the digest and the next pass adds its chain. The driver reconciles the table before the
router pass and again after the L2 pass (`desired_redirects`), reading it once (`RedirectTable`): the
managers `RedirectsBefore` and `RedirectsAfter`. A table that cannot be read is unknown: nothing is
written, and the FIP holders are not reported ACTIVE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from kvnet.dataplane.linux import nft_table
from kvnet.dataplane.linux.observe import tool
from kvnet.dataplane.result import PhaseResult
from kvnet.plan import HostPlan
from kvnet.sys.cmd import CommandError, in_netns
from kvnet.sys.runner import SYSTEM, Runner, json_of

if TYPE_CHECKING:
    from kvnet.dataplane.linux.context import LinuxPass

TABLE = "kvnet"  # family netdev


class Redirect(NamedTuple):
    gateway_mac: str
    leg_mac: str
    leg_device: str  # the leg's host end, the frame's way out


def desired_redirects(plan: HostPlan, devices: set[str]) -> dict[str, tuple[Redirect, ...]]:
    """tap -> its redirects, for the plan's ports whose tap exists, and only towards legs whose host end
    exists: run before the router pass (which may delete a leg) and after the L2 pass (which plugs a
    new one), no frame is ever sent to a leg that is not there."""
    leg_devices = plan.router_leg_devices()
    out = {}
    for port in plan.ports:
        redirects = tuple(Redirect(gateway, leg, leg_devices[leg]) for gateway, leg in port.gateway_redirects
                          if leg_devices.get(leg) in devices)
        if redirects and port.device in devices:
            out[port.device] = redirects
    return out


def render_table(redirects: dict[str, tuple[Redirect, ...]]) -> tuple[str | None, str]:
    """(digest, the table's body); (None, "") when no tap needs a chain."""
    if not redirects:
        return None, ""
    lines = []
    for device, wanted in sorted(redirects.items()):
        lines += [f"  chain in-{device} {{",
                  f'    type filter hook ingress device "{device}" priority filter; policy accept;',
                  *(f'    ether type ip ether daddr {r.gateway_mac} ether daddr set {r.leg_mac} fwd to "{r.leg_device}"'
                    for r in wanted), "  }"]
    body = "\n".join(lines)
    return nft_table.digest(body), body


def table_script(digest: str | None, body: str) -> str:
    """Replace the table in one transaction (or just delete it when nothing needs it)."""
    return nft_table.replace_script("netdev", TABLE, digest, body)


class RedirectTable:
    """The host's table over one reconcile pass: its digest is read once, then known from what this
    pass wrote (the driver reconciles it twice per pass; a fresh object per pass keeps no memory)."""

    def __init__(self, host_netns: str | None, runner: Runner = SYSTEM) -> None:
        self.host_netns = host_netns
        self.runner = runner
        self._digest: str | None = None
        self._digest_known = False

    def digest(self) -> str | None:
        if not self._digest_known:
            self._digest = nft_table.observe_digest("netdev", TABLE, self.host_netns, self.runner)
            self._digest_known = True
        return self._digest

    def plan(self, plan: HostPlan, devices: set[str] | None = None) -> tuple[str | None, str] | None:
        """(desired digest, the nft script), or None when the table is as it should be. `devices`: the
        host's devices, listed here when not given and some tap may need a chain."""
        wanted = {}
        if any(p.gateway_redirects for p in plan.ports):
            if devices is None:
                devices = {row["ifname"] for row in json_of(self.runner, [*tool("ip", self.host_netns), "-j", "link",
                                                                          "show"])}
            wanted = desired_redirects(plan, devices)
        digest, body = render_table(wanted)
        return None if self.digest() == digest else (digest, table_script(digest, body))

    def reconcile(self, plan: HostPlan, devices: set[str] | None = None) -> tuple[bool, str | None]:
        """(changed, the error nft gave). Raises CommandError when the table or the devices cannot be read."""
        change = self.plan(plan, devices)
        if change is None:
            return False, None
        proc = self.runner.run(in_netns(["nft", "-f", "-"], self.host_netns), input=change[1])
        if proc.returncode != 0:
            self._digest_known = False  # whatever is there now, the next call reads it again
            return True, proc.stderr.strip() or f"nft exited {proc.returncode}"
        self._digest = change[0]
        return True, None


def holders(plan: HostPlan) -> list[str]:
    """The ports with a redirect chain: they depend on the table."""
    return [p.port_id for p in plan.ports if p.gateway_redirects]


class _Redirects:
    phase = ""

    def _reconcile(self, ctx: LinuxPass, devices: set[str] | None) -> PhaseResult:
        result = PhaseResult(self.phase)
        try:
            changed, error = ctx.redirects.reconcile(ctx.plan, devices)
        except CommandError as exc:
            return result.unknown(str(exc), holders(ctx.plan))
        if error:
            result.fail("redirects", f"netdev {TABLE}", error, holders(ctx.plan))
        elif changed:
            result.changed["gateway_redirects"] = 1
        return result


class RedirectsBefore(_Redirects):
    """Before the router pass: no frame is readdressed to a leg that pass may delete."""

    phase = "redirects-before"

    def reconcile(self, ctx: LinuxPass) -> PhaseResult:
        return self._reconcile(ctx, None)


class RedirectsAfter(_Redirects):
    """After the L2 pass: new legs and taps are plugged, as the L2 observation saw them."""

    phase = "redirects-after"

    def reconcile(self, ctx: LinuxPass) -> PhaseResult:
        if ctx.observed is None:  # the host's devices could not be read
            return PhaseResult(self.phase).unknown("the host's links were not read", holders(ctx.plan))
        return self._reconcile(ctx, set(ctx.observed.links))


def pending(plan: HostPlan, host_netns: str | None, runner: Runner = SYSTEM) -> tuple[int, int]:
    """(stale, all) changes: the table replaced counts one; one that should not exist also counts stale."""
    change = RedirectTable(host_netns, runner).plan(plan)
    if change is None:
        return 0, 0
    return (1 if change[0] is None else 0), 1
