"""RouterDriver: one reconcile pass over this host's router namespaces (observe -> diff -> apply).

The host namespace's own name prefixes the router namespaces' names, so two lab hosts on one
machine never see each other's routers. An agent started with `ip netns exec` learns that name from
`ip netns identify`; on a real hypervisor (root namespace) it is empty and routers are `kvr-<id>`.

Shared by both host dataplanes: the Linux driver and the OVS driver each run this same pass first
(namespaces, veth legs, addresses, routes, rules, neighbours, nft), then plug the legs' host ends
(`kvt-<id>`) like VM taps in their own L2 pass -- a bridge port with its MAC pinned as a static FDB
entry (`pinned_fdb.py`), or an OVS port on kv-int whose flows keep the shared DVR gateway MAC off the
tunnels (`kvnet.dataplane.ovs.flows`) -- and call `after_l2` last.
"""

from __future__ import annotations

from kvnet.dataplane.linux.router_apply import announce_fips, apply_routers
from kvnet.dataplane.linux.router_diff import RouterChanges, diff_routers
from kvnet.dataplane.linux.router_observe import observe_routers
from kvnet.dataplane.linux.router_render import render_routers
from kvnet.plan import HostPlan
from kvnet.sys.cmd import run


def identify_netns() -> str | None:
    """The name of the network namespace this process runs in, if it has one under /run/netns."""
    out = run(["ip", "netns", "identify"], check=False).stdout.split()
    return out[0] if out else None


class RouterDriver:
    def __init__(self, host_netns: str | None) -> None:
        self.host_netns = host_netns  # the namespace the host's bridges live in (None: this process's)
        self._prefix_ns: str | None = host_netns or identify_netns()

    def plan_changes(self, plan: HostPlan) -> tuple[RouterChanges, int]:
        observed = observe_routers(self._prefix_ns)
        changes = diff_routers(render_routers(plan, self._prefix_ns), observed)
        return changes, changes.stale_objects(observed)

    def reconcile(self, plan: HostPlan) -> tuple[RouterChanges, list[str]]:
        changes, _ = self.plan_changes(plan)
        return changes, apply_routers(changes, self.host_netns)

    def after_l2(self, changes: RouterChanges) -> list[str]:
        """Once the L2 pass has attached the legs: the floating IPs added in this pass announced."""
        return announce_fips(changes)
