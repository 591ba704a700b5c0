"""LinuxDriver: one level-triggered reconcile pass for one namespace, as an ordered list of managers.

It keeps no memory between passes: a fresh instance on an already-programmed host observes kvnet's
objects (by name prefix + alias) and adopts them without flushing anything. Commands go through one
injectable `Runner` (kvnet.sys.runner), so a fake kernel can stand in for the real one in tests.
"""

from __future__ import annotations

from kvnet.dataplane.linux import garp
from kvnet.dataplane.linux.bridge_limits import BridgeLimits
from kvnet.dataplane.linux.context import Announce, LinuxPass
from kvnet.dataplane.linux.diff import ChangeSet, diff
from kvnet.dataplane.linux.filters import Filters
from kvnet.dataplane.linux.l2 import L2
from kvnet.dataplane.linux.observe import observe
from kvnet.dataplane.linux.pinned_fdb import PinnedFdb
from kvnet.dataplane.linux.render import DEFAULT_ARP_MODE, ArpMode, render
from kvnet.dataplane.linux.router import FipAnnounce, RouterDriver, Routers
from kvnet.dataplane.linux.state import ObservedState
from kvnet.dataplane.manager import Manager, run_phases
from kvnet.dataplane.result import ReconcileResult
from kvnet.plan import HostPlan
from kvnet.sys.bridge_netlink import NETLINK
from kvnet.sys.bridge_netlink import BridgeLimits as Limits
from kvnet.sys.runner import SYSTEM, Runner


class LinuxDriver:
    def __init__(self, netns: str | None = None, arp_mode: ArpMode = DEFAULT_ARP_MODE, *, runner: Runner = SYSTEM,
                 announce: Announce = garp.announce, limits: Limits = NETLINK) -> None:
        self.netns = netns
        self.arp_mode = arp_mode
        self.runner = runner
        self.announce = announce
        self.limits = limits
        self.routers = RouterDriver(netns, runner)
        # The phase order, and why -- the one place it lives:
        self.phases: tuple[Manager[LinuxPass], ...] = (
            # 1. Filters (port security, security groups) in place before L2 attaches a new tap, and no
            #    FIP holder's frame readdressed to a FIP namespace leg the router pass may delete.
            Filters(after_l2=False),
            # 2. Router namespaces and their veth legs: the legs' host ends are ports for the L2 pass.
            Routers(self.routers),
            # 3. Bridges, tunnels, attachments (taps, legs), FDB, neighbours; its observation feeds 4 and 5.
            L2(arp_mode),
            # 4. The cap on what the bridges L2 made may learn.
            BridgeLimits(),
            # 5. MACs pinned on the ports L2 saw (legs, FIP holders, ports that do not learn): a device
            #    created since waits a pass.
            PinnedFdb(),
            # 6. Start readdressing once L2 has plugged the new leg and tap (as its observation saw them).
            Filters(after_l2=True),
            # 7. Announce new floating IPs once their legs are on their bridges.
            FipAnnounce(announce),
        )

    def plan_changes(self, plan: HostPlan, observed: ObservedState | None = None) -> ChangeSet:
        """What the next reconcile would do to L2, without doing it (from `observed` when given)."""
        return diff(render(plan, self.arp_mode), observed if observed is not None else observe(self.netns,
                                                                                                self.runner))

    def reconcile(self, plan: HostPlan) -> ReconcileResult:
        return run_phases(self.phases, LinuxPass(plan, self.netns, self.runner, self.announce, self.limits))
