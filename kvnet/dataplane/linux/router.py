"""RouterDriver: one reconcile pass over this host's router namespaces (observe -> diff -> apply).

The host namespace's own name prefixes the router namespaces' names, so two lab hosts on one
machine never see each other's routers. An agent started with `ip netns exec` learns that name from
`ip netns identify`; on a real hypervisor (root namespace) it is empty and routers are `kvr-<id>`.

Shared by both host dataplanes: the Linux driver and the OVS driver each run this same pass as their
`Routers` manager (namespaces, veth legs, addresses, routes, rules, neighbours, nft), then plug the
legs' host ends (`kvt-<id>`) like VM taps in their own L2 pass -- a bridge port with its MAC pinned as
a static FDB entry (`pinned_fdb.py`), or an OVS port on kv-int whose flows keep the shared DVR gateway
MAC off the tunnels (`kvnet.dataplane.ovs.flows`) -- and run `FipAnnounce` last.

A namespace that cannot be read is unknown: left as it is, its ports not reported ACTIVE.
"""

from __future__ import annotations

from typing import Protocol

from kvnet.dataplane.linux.context import Announce
from kvnet.dataplane.linux.router_apply import announce_fips, apply_routers
from kvnet.dataplane.linux.router_diff import RouterChanges, diff_routers
from kvnet.dataplane.linux.router_observe import observe_routers
from kvnet.dataplane.linux.router_render import render_routers
from kvnet.dataplane.linux.router_state import router_ns
from kvnet.dataplane.result import PhaseResult
from kvnet.plan import HostPlan
from kvnet.sys.cmd import CommandError
from kvnet.sys.runner import SYSTEM, Runner


def identify_netns(runner: Runner = SYSTEM) -> str | None:
    """The name of the network namespace this process runs in, if it has one under /run/netns."""
    out = runner.run(["ip", "netns", "identify"]).stdout.split()
    return out[0] if out else None


def router_ports(plan: HostPlan, host_netns: str | None) -> dict[str, tuple[str, ...]]:
    """namespace -> the ports it serves here: its legs' ports, and the FIP holders redirected to its legs."""
    by_device = {port.device: port.port_id for port in plan.ports}
    out = {}
    for router in plan.routers:
        macs = {leg.mac for leg in router.legs}
        ports = {by_device[leg.device] for leg in router.legs if leg.device in by_device}
        ports |= {p.port_id for p in plan.ports if any(leg in macs for _, leg in p.gateway_redirects)}
        out[router_ns(host_netns, router.router_id, router.instance)] = tuple(sorted(ports))
    return out


class RoutedPass(Protocol):
    plan: HostPlan
    routed: RouterChanges | None


class RouterDriver:
    def __init__(self, host_netns: str | None, runner: Runner = SYSTEM) -> None:
        self.host_netns = host_netns  # the namespace the host's bridges live in (None: this process's)
        self.runner = runner
        self._prefix_ns: str | None = host_netns or identify_netns(runner)

    def plan_changes(self, plan: HostPlan) -> tuple[RouterChanges, int]:
        """(what the next pass would change, how many objects kvnet owns that the plan does not have);
        namespaces that cannot be read are left out of both."""
        observed, unknown = observe_routers(self._prefix_ns, self.runner)
        changes = diff_routers(render_routers(plan, self._prefix_ns), observed, unknown)
        return changes, changes.stale_objects(observed)

    def reconcile(self, plan: HostPlan) -> tuple[RouterChanges | None, PhaseResult]:
        """(what was changed -- None when the namespaces could not be listed, the phase's result)."""
        result = PhaseResult(Routers.phase)
        serves = router_ports(plan, self._prefix_ns)
        try:
            observed, unknown = observe_routers(self._prefix_ns, self.runner)
        except (CommandError, OSError) as exc:
            return None, result.unknown(str(exc), {p for ports in serves.values() for p in ports})
        for name, message in sorted(unknown.items()):
            result.unknown(message, serves.get(name, ()), key=name)
        changes = diff_routers(render_routers(plan, self._prefix_ns), observed, unknown)
        result.failures += apply_routers(changes, self.host_netns, self.runner, serves)
        result.added, result.changed, result.removed = changes.added, changes.changed, changes.removed
        return changes, result


class Routers:
    """The router namespaces; first of the L2 work: their legs' host ends are ports for the L2 pass."""

    phase = "routers"

    def __init__(self, driver: RouterDriver) -> None:
        self.driver = driver

    def reconcile(self, ctx: RoutedPass) -> PhaseResult:
        ctx.routed, result = self.driver.reconcile(ctx.plan)
        return result


class FipAnnounce:
    """Gratuitous ARPs for the floating IPs added this pass, once the L2 pass has plugged their legs."""

    phase = "fip-announce"

    def __init__(self, announce: Announce) -> None:
        self.announce = announce

    def reconcile(self, ctx: RoutedPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        if ctx.routed is not None:
            result.failures += announce_fips(ctx.routed, self.announce)
        return result
