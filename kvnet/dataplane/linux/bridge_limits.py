"""The cap on each kvnet bridge's learned FDB entries (the bridges themselves are the L2 manager's).

Learning is off on every port whose MACs kvnet knows (`render`, `pinned_fdb`); what still learns -- ports
without port security, physnet uplinks -- could otherwise fill a bridge's table without limit (20,000
random source MACs made 20,000 entries). Each bridge gets `fdb_max_learned` = FDB_MAX_LEARNED: at the
cap the kernel stops learning new MACs (frames to them are flooded), it never drops traffic. 4096 is
far above what a tenant network learns (its VMs' MACs are static entries, not counted) and fits a
provider segment of a /20 behind a physnet uplink, while a flood of forged MACs costs at most 4096
entries (a few hundred KiB) per bridge. Set and read over netlink (`kvnet.sys.bridge_netlink`): the
iproute2 of Debian 12 knows no such option. A kernel without the attribute (before 6.8) is left as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvnet.dataplane.linux.context import ports_by_network
from kvnet.dataplane.result import PhaseResult

if TYPE_CHECKING:
    from kvnet.dataplane.linux.context import LinuxPass

FDB_MAX_LEARNED = 4096


class BridgeLimits:
    phase = "bridge-limits"

    def reconcile(self, ctx: LinuxPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        by_network = ports_by_network(ctx.plan)
        serves = {net.bridge: by_network.get(net.network_id, ()) for net in ctx.plan.networks}
        try:
            have = ctx.limits.read(ctx.netns)
        except OSError as exc:
            return result.unknown(f"reading the bridges' fdb_max_learned: {exc}",
                                  {port for ports in serves.values() for port in ports})
        for bridge, ports in sorted(serves.items()):
            cap = have.get(bridge, (0, None))[1]
            if bridge not in have or cap is None or cap == FDB_MAX_LEARNED:
                continue  # not there (L2 failed to make it: reported there), an old kernel, or already set
            error = ctx.limits.set_cap(ctx.netns, bridge, FDB_MAX_LEARNED)
            if error:
                result.fail("bridge", bridge, error, ports)
            else:
                result.changed["fdb_max_learned"] = result.changed.get("fdb_max_learned", 0) + 1
        return result
