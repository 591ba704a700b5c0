"""The filter manager of the Linux driver: port security, security groups and the FIP holders' gateway
redirect, as two nftables tables reconciled object by object (`filter_render`, `filter_objects`).

It runs twice per pass (`kvnet.dataplane.linux.driver`): before the router pass, so that no frame is
readdressed to a FIP namespace leg that pass may delete and a new tap is filtered before L2 attaches
it; and after the L2 pass, to readdress towards legs that pass plugged. A rule or a remote-group member
that went away also ends the connections it allowed (`conntrack_sweep`).
"""

from __future__ import annotations

import logging

from kvnet.dataplane.linux import conntrack_sweep, stateful
from kvnet.dataplane.linux.context import LinuxPass
from kvnet.dataplane.linux.filter_objects import FilterChanges, ObservedFilters, diff, observe, script
from kvnet.dataplane.linux.filter_render import INET, MAX_MARK, TABLE, render_filters, set_name
from kvnet.dataplane.linux.observe import tool
from kvnet.dataplane.result import PhaseResult
from kvnet.plan import HostPlan
from kvnet.sys.cmd import CommandError, in_netns
from kvnet.sys.runner import Runner, json_of

log = logging.getLogger("kvnet.dataplane.filters")


def all_ports(plan: HostPlan) -> list[str]:
    """Every port of the plan depends on the tables: a tap without its dispatch element is dropped."""
    return [p.port_id for p in plan.ports]


class Filters:
    def __init__(self, *, after_l2: bool) -> None:
        self.after_l2 = after_l2
        self.phase = "filters-after" if after_l2 else "filters-before"
        self.swept = False  # the first pass checks every port's connections (rules may have changed meanwhile)

    def reconcile(self, ctx: LinuxPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        if self.after_l2 and ctx.observed is None:
            return result.unknown("the host's links were not read", [p.port_id for p in ctx.plan.ports
                                                                      if p.gateway_redirects])
        try:
            # After L2, the tables are what the first phase of this pass left (if it could read them).
            observed = ctx.filters if self.after_l2 and ctx.filters is not None else observe(ctx.runner, ctx.netns)
            devices = set(ctx.observed.links) if ctx.observed is not None else self._devices(ctx)
        except CommandError as exc:
            return result.unknown(str(exc), all_ports(ctx.plan))
        if not self.after_l2:
            ctx.stateless_only = stateful.ensure(ctx.runner, ctx.netns) if ctx.plan.filters else None
        if ctx.stateless_only:
            result.fail("filters", "br_netfilter", ctx.stateless_only, [f.port_id for f in ctx.plan.filters])
        changes = diff(render_filters(ctx.plan, devices, observed.marks(), fail_closed=bool(ctx.stateless_only)),
                       observed)
        if changes:
            text = script(changes)
            proc = ctx.runner.run(in_netns(["nft", "-f", "-"], ctx.netns), input=text)
            if proc.returncode != 0:
                log.debug("the nft transaction that failed:\n%s", text)
                by_device = {p.device: p.port_id for p in ctx.plan.ports}
                affected = all_ports(ctx.plan) if changes.rebuild else \
                    [by_device[d] for d in changes.devices() if d in by_device]
                result.fail("filters", f"{INET}/bridge {TABLE}",
                            proc.stderr.strip() or f"nft exited {proc.returncode}", affected)
                return result
            result.added, result.changed, result.removed = changes.counts()
        ctx.filters = observed.applied(changes)
        self._sweep(ctx, changes, result)
        return result

    def _sweep(self, ctx: LinuxPass, changes: FilterChanges, result: PhaseResult) -> None:
        """The connections of the ports whose rules, or remote groups, lost something."""
        if self.after_l2:
            return
        narrowed = {name for _, name, _ in changes.del_elements if name.startswith("g")} | \
            {name for _, name in changes.del_sets}
        # A port whose rule chain was replaced: its dispatch element changed value (a new port has no
        # connection to end yet).
        replaced = {key for _, name, key in changes.del_elements if name in ("sg_out", "sg_in")} & \
            {key for _, name, key, _ in changes.add_elements if name in ("sg_out", "sg_in")}
        by_mark = {mark: device for device, mark in (ctx.filters.marks() if ctx.filters else {}).items()}
        renewed = {by_mark.get(int(key) & MAX_MARK) for key in replaced}
        concerned = [f for f in ctx.plan.filters if not self.swept or f.device in renewed
                     or any(r.remote_group and set_name(r.remote_group, r.ethertype[-1]) in narrowed for r in f.rules)]
        self.swept = True
        if not concerned:
            return
        deleted, errors = conntrack_sweep.sweep(ctx.runner, ctx.netns, concerned,
                                                {s.group_id: s for s in ctx.plan.address_sets})
        if deleted:
            result.removed["conntrack"] = deleted
        for error in errors:
            result.fail("conntrack", "sweep", error, [f.port_id for f in concerned])

    @staticmethod
    def _devices(ctx: LinuxPass) -> set[str]:
        """The host's devices, read only when some port has a gateway redirect to place."""
        if not any(p.gateway_redirects for p in ctx.plan.ports):
            return set()
        return {row["ifname"] for row in json_of(ctx.runner, [*tool("ip", ctx.netns), "-j", "link", "show"])}


def pending(plan: HostPlan, netns: str | None, runner: Runner, devices: set[str]) -> tuple[int, int]:
    """(stale, all) changes the filter tables still need: what a next pass would delete, and everything."""
    observed: ObservedFilters = observe(runner, netns)
    changes: FilterChanges = diff(render_filters(plan, devices, observed.marks()), observed)
    replaced = {(family, name, key) for family, name, key, _ in changes.add_elements}
    stale = len(changes.del_chains) + len(changes.del_sets) + sum(
        1 for element in changes.del_elements if element not in replaced)
    total = stale + len(changes.add_chains) + len(changes.add_sets) + len(changes.add_elements) + int(changes.rebuild)
    return stale, total
