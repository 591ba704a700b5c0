"""LinuxDriver: one level-triggered reconcile pass, observe -> diff -> apply, for one namespace.

It keeps no memory between passes: a fresh instance on an already-programmed host observes kvnet's
objects (by name prefix + alias) and adopts them without flushing anything.
"""

from __future__ import annotations

import time

from kvnet.dataplane import ReconcileResult
from kvnet.dataplane.linux.apply import apply
from kvnet.dataplane.linux.diff import ChangeSet, diff
from kvnet.dataplane.linux.gateway_redirect import RedirectTable
from kvnet.dataplane.linux.observe import observe
from kvnet.dataplane.linux.pinned_fdb import reconcile_pins
from kvnet.dataplane.linux.render import DEFAULT_ARP_MODE, ArpMode, render
from kvnet.dataplane.linux.router import RouterDriver
from kvnet.dataplane.linux.state import ObservedState
from kvnet.plan import HostPlan


class LinuxDriver:
    def __init__(self, netns: str | None = None, arp_mode: ArpMode = DEFAULT_ARP_MODE) -> None:
        self.netns = netns
        self.arp_mode = arp_mode
        self.routers = RouterDriver(netns)  # router namespaces first: their legs are ports for the L2 pass

    def plan_changes(self, plan: HostPlan, observed: ObservedState | None = None) -> ChangeSet:
        """What the next reconcile would do, without doing it (from `observed` when given)."""
        return diff(render(plan, self.arp_mode), observed if observed is not None else observe(self.netns))

    def reconcile(self, plan: HostPlan) -> ReconcileResult:
        start = time.perf_counter()
        redirects = RedirectTable(self.netns)
        # Readdressing to a FIP namespace leg stops before the router pass can delete the leg ...
        redirected, errors = redirects.reconcile(plan)
        routed, router_errors = self.routers.reconcile(plan)
        errors += router_errors
        observed = observe(self.netns)
        changes = self.plan_changes(plan, observed)
        errors += apply(changes, self.netns)
        errors += reconcile_pins(plan, self.netns, observed)[1]  # legs' and FIP holders' MACs on their bridges
        # ... and starts once the L2 pass has plugged a new one (and the tap), as the observation saw them.
        readdressed, redirect_errors = redirects.reconcile(plan, set(observed.links))
        redirected |= readdressed
        errors += redirect_errors
        errors += self.routers.after_l2(routed)  # needs the legs attached by the L2 pass above
        errors += [f"link {name} exists but is not kvnet's; left alone" for name in changes.conflicts]
        counts = changes.counts()
        return ReconcileResult(
            added=counts["added"] | routed.added,
            changed=counts["changed"] | routed.changed | ({"gateway_redirects": 1} if redirected else {}),
            removed=counts["removed"] | routed.removed,
            missing_ports=tuple(a.owner.removeprefix("port:") for a in changes.missing
                                if a.owner.startswith("port:")),
            missing_devices=tuple(a.device for a in changes.missing),
            errors=tuple(errors),
            duration_ms=(time.perf_counter() - start) * 1000,
        )
