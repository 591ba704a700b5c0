"""The L2 manager: bridges, VXLAN devices, attachments (taps, legs, physnet NICs), FDB and neighbours.

observe (three listings) -> diff -> apply (batches, `apply.py`). Its observation is kept in the pass for
the managers after it (pins, redirects). A listing that fails leaves L2 unknown for the pass: nothing
is written, every port is left as it was reported.

A link is kvnet's by its alias, which `ip link add` cannot set: a bridge or tunnel created in this pass
whose alias line then failed would look foreign to every later pass and never be repaired, so such a
link is deleted again in the same pass (nothing uses it yet) and created whole by the next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvnet.dataplane.linux.apply import apply
from kvnet.dataplane.linux.context import ports_by_device, ports_by_network
from kvnet.dataplane.linux.diff import diff
from kvnet.dataplane.linux.observe import observe, tool
from kvnet.dataplane.linux.render import ArpMode, render
from kvnet.dataplane.result import PhaseResult
from kvnet.sys.batch import run_batch
from kvnet.sys.cmd import CommandError

if TYPE_CHECKING:
    from kvnet.dataplane.linux.context import LinuxPass


class L2:
    phase = "l2"

    def __init__(self, arp_mode: ArpMode) -> None:
        self.arp_mode = arp_mode

    def reconcile(self, ctx: LinuxPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        plan = ctx.plan
        try:
            ctx.observed = observe(ctx.netns, ctx.runner)
        except CommandError as exc:
            return result.unknown(str(exc), (p.port_id for p in plan.ports))
        desired = render(plan, self.arp_mode)
        changes = diff(desired, ctx.observed)
        ctx.moved = {a.device for a in changes.attach if ctx.observed.links[a.device].master != a.master}
        serves = ports_by_device(plan)
        failures = apply(changes, ctx.netns, ctx.runner, serves)
        result.failures += failures
        created = {link.name for link in changes.link_add}
        half_made = sorted({f.key for f in failures if f.kind == "link" and f.key in created})
        if half_made:
            run_batch(ctx.runner, tool("ip", ctx.netns), [f"link del dev {name}" for name in half_made])
        for name in changes.conflicts:
            result.fail("link", name, "exists but is not kvnet's; left alone", serves.get(name, ()))
        for network_id in desired.unsupported:
            result.fail("network", network_id, "type not supported by the Linux driver",
                        ports_by_network(plan).get(network_id, ()))
        for att in changes.missing:
            if att.owner.startswith("port:"):
                result.missing[att.owner.removeprefix("port:")] = att.device
            else:  # a physnet NIC the host does not have: its network's ports cannot work
                result.fail("port", att.device, f"device {att.device} not present on this host",
                            serves.get(att.device, ()))
        counts = changes.counts()
        result.added, result.changed, result.removed = counts["added"], counts["changed"], counts["removed"]
        return result
