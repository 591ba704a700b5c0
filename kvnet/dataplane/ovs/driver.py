"""OvsDriver: one level-triggered reconcile pass against one OVS instance, as an ordered list of managers.

The two OVS phases:
1. OVSDB: render the rows (bridges, ports with their local VLAN) -> diff against the IDL -> one
   transaction, which returns once ovs-vswitchd has configured the ports (their ofports are known).
2. OpenFlow: render the flows (they need the ofports), forwarding and port filters alike (flows.py,
   filters.py) -> dump kvnet's flows per bridge -> diff by cookie -> one atomic bundle per bridge. A
   filter the flows cannot express fails its port (and leaves it without flows: it forwards nothing).
Both are all-or-nothing per transaction or bundle, so a refused one fails every port it serves.

No memory between passes: a fresh driver on a programmed host observes the same tags and ofports,
renders the same flows with the same cookies and changes nothing (an agent restart drops no packet).
`watch(wake)` starts the monitor that notices a restarted ovs-vswitchd (see monitor.py).

Routers: given a `RouterDriver` (the agent passes one), the pass starts with the same router
reconcile the Linux driver runs (router namespaces, veth legs, addresses, routes, NAT); the legs'
host ends are ports of the plan, so phase 1 plugs them into kv-int like VM taps (router_legs.py
brings them up), phase 2's flows keep a distributed router's shared gateway MAC off the tunnels
(flows.py), and new floating IPs are announced last. Without one, a plan with routers is an error.

Under the userspace datapath the host's own stack would see every frame of kvnet's kernel-device
ports: right after phase 1, `host_isolation` puts a drop chain on each port OVS has opened (in
`host_netns`, the namespace the host's devices live in; None: this process's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kvnet.dataplane.linux import garp
from kvnet.dataplane.linux.context import Announce
from kvnet.dataplane.linux.router import FipAnnounce, RouterDriver, Routers
from kvnet.dataplane.linux.router_diff import RouterChanges
from kvnet.dataplane.manager import Manager, run_phases
from kvnet.dataplane.ovs import filters, host_isolation, openflow
from kvnet.dataplane.ovs.diff import DbChanges, FlowChanges, diff_db, diff_flows
from kvnet.dataplane.ovs.flows import is_redirect, render_flows, stale_redirects
from kvnet.dataplane.ovs.monitor import RestartMonitor
from kvnet.dataplane.ovs.ovsdb import Ovsdb
from kvnet.dataplane.ovs.render import assign_lvids, render_db
from kvnet.dataplane.ovs.router_legs import LegsUp
from kvnet.dataplane.ovs.state import INT_BRIDGE, DesiredDb, Flow, ObservedDb
from kvnet.dataplane.result import PhaseResult, ReconcileResult
from kvnet.plan import HostPlan
from kvnet.sys.cmd import CommandError

DEFAULT_RUNDIR = Path("/var/run/openvswitch")


@dataclass
class OvsPass:
    plan: HostPlan
    routed: RouterChanges | None = None
    observed: ObservedDb | None = None  # after the OVSDB manager's transaction: the ofports the flows use
    desired: DesiredDb = field(default_factory=DesiredDb)
    lvids: dict[str, int] = field(default_factory=dict)

    def all_ports(self) -> list[str]:
        return [p.port_id for p in self.plan.ports]


class OvsDriver:
    def __init__(self, rundir: Path = DEFAULT_RUNDIR, *, host_netns: str | None, datapath_type: str = "system",
                 timeout: float = 10.0, routers: RouterDriver | None = None,
                 announce: Announce = garp.announce) -> None:
        self.rundir = Path(rundir)
        self.host_netns = host_netns  # required: isolation under `netdev` runs nft there
        self.isolation_settled = False  # under the kernel datapath: no table left from `netdev` (checked once)
        self.routers = routers
        self.datapath_type = datapath_type
        self.db = Ovsdb(f"unix:{self.rundir / 'db.sock'}", timeout)
        self.monitor: RestartMonitor | None = None
        self.installed: list[Flow] = []  # what the last pass left programmed (the monitor's reference)
        self.used_ofports: dict[str, int] = {}  # kvnet's ports and the ofports the last pass rendered with
        # The phase order, and why -- the one place it lives:
        self.phases: tuple[Manager[OvsPass], ...] = (
            # 1. Delete redirect flows the plan lost before the router pass can delete their `fq-` leg.
            StaleRedirects(self),
            # 2. Router namespaces and legs (the Linux driver's pass), then the legs' host ends up:
            #    they are kv-int ports from here on.
            *((Routers(routers), LegsUp(routers.host_netns)) if routers is not None else (NoRouters(),)),
            # 3. OVSDB rows in one transaction; it returns once vswitchd has the ofports the flows need.
            OvsdbRows(self),
            # 4. Under `netdev`, a drop chain per port OVS opened -- before the flows make it ACTIVE.
            HostIsolation(self),
            # 5. OpenFlow, one bundle per bridge, from the ofports of 3: forwarding and port filters
            #    together, so a port never forwards without its filter (flows.py).
            OpenFlow(self),
            # 6. Announce new floating IPs once their legs are on kv-int with their flows.
            *((FipAnnounce(announce),) if routers is not None else ()),
        )

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        self.db.close()

    def __enter__(self) -> OvsDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def watch(self, wake: Callable[[], None], interval_s: float = 0.2) -> None:
        """Call `wake` (from a thread) whenever the programmed state was lost or ofports changed."""
        if self.monitor is None:
            self.monitor = RestartMonitor(self, wake, interval_s)
            self.monitor.start()

    def plan_changes(self, plan: HostPlan) -> tuple[DbChanges, FlowChanges, host_isolation.IsolationChanges]:
        """What the next pass would change in OVSDB, OpenFlow and the host isolation (not the routers),
        without doing it."""
        observed = self.db.observe()
        lvids = assign_lvids(plan, _current_lvids(observed))
        desired_db = render_db(plan, lvids, self.datapath_type)
        flows = render_flows(plan, lvids, observed.ofports)
        isolation = host_isolation.diff(host_isolation.wanted(desired_db, self.datapath_type, observed.ofports),
                                        host_isolation.observe(self.host_netns))
        return diff_db(desired_db, observed), self.diff_flows(desired_db, flows), isolation

    def diff_flows(self, desired_db: DesiredDb, flows: list[Flow]) -> FlowChanges:
        bridges = sorted(set(desired_db.bridges) | {f.bridge for f in flows})
        return diff_flows(flows, [f for bridge in bridges for f in openflow.dump(self.rundir, bridge)])

    def reconcile(self, plan: HostPlan) -> ReconcileResult:
        return run_phases(self.phases, OvsPass(plan))


class NoRouters:
    phase = "routers"

    def reconcile(self, ctx: OvsPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        for router in ctx.plan.routers:
            result.fail("router_ns", router.router_id, "routers planned, but this OVS driver has no router pass")
        return result


class StaleRedirects:
    """The FIP holders' redirect flows the plan no longer has, deleted before the router pass can delete
    their `fq-` leg (the Linux driver's order): their frames would chase a vanished port for one pass.
    Only what the last pass installed is looked at (after an agent restart the ordinary flow pass
    deletes them, one pass later)."""

    phase = "stale-redirects"

    def __init__(self, driver: OvsDriver) -> None:
        self.driver = driver

    def reconcile(self, ctx: OvsPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        if not any(is_redirect(f) for f in self.driver.installed):
            return result
        observed = self.driver.db.observe()
        flows = render_flows(ctx.plan, assign_lvids(ctx.plan, _current_lvids(observed)), observed.ofports)
        stale = stale_redirects(self.driver.installed, flows)
        error = openflow.apply(self.driver.rundir, INT_BRIDGE, [], stale) if stale else None
        if error:
            result.fail("flows", f"{INT_BRIDGE} redirects", error)
        result.removed["flow"] = len(stale) if not error else 0
        return result


class OvsdbRows:
    phase = "ovsdb"

    def __init__(self, driver: OvsDriver) -> None:
        self.driver = driver

    def reconcile(self, ctx: OvsPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        db = self.driver.db
        observed = db.observe()
        ctx.lvids = assign_lvids(ctx.plan, _current_lvids(observed))
        ctx.desired = render_db(ctx.plan, ctx.lvids, self.driver.datapath_type)
        changes = diff_db(ctx.desired, observed)
        error = db.apply(changes)
        by_device = {p.device: p.port_id for p in ctx.plan.ports}
        if error:  # one transaction: nothing of it applied
            rows = [p.name for p in changes.port_add + changes.port_change] + changes.port_del
            vm_rows_only = not (changes.bridge_add or changes.bridge_change or changes.bridge_del) and all(
                name in by_device for name in rows)
            result.fail("ovsdb", "transaction", error,
                        [by_device[name] for name in rows] if vm_rows_only else ctx.all_ports())
        ctx.observed = db.observe() if not changes.empty else observed
        for conflict in changes.conflicts:
            result.fail("ovsdb", conflict.split(" ")[1], conflict, ctx.all_ports())
        for network_id in ctx.desired.unsupported:
            result.fail("network", network_id, "type not supported by the OVS driver",
                        [p.port_id for p in ctx.plan.ports if p.network_id == network_id])
        done = not error  # counts of what was applied
        result.added = {"bridge": len(changes.bridge_add) * done, "port": len(changes.port_add) * done}
        result.changed = {"bridge": len(changes.bridge_change) * done, "port": len(changes.port_change) * done}
        result.removed = {"bridge": len(changes.bridge_del) * done, "port": len(changes.port_del) * done}
        result.missing = {p.port_id: p.device for p in ctx.plan.ports if ctx.observed.ofports.get(p.device, -1) <= 0}
        return result


class HostIsolation:
    """From the same ofports that decide ACTIVE, so a port is isolated before it is reported ACTIVE (and its
    VM resumed). Under the kernel datapath (fixed for this driver's life) only the first pass looks, for
    a table left from `netdev`."""

    phase = "host-isolation"

    def __init__(self, driver: OvsDriver) -> None:
        self.driver = driver

    def reconcile(self, ctx: OvsPass) -> PhaseResult:
        result = PhaseResult(self.phase)
        driver = self.driver
        if driver.isolation_settled or ctx.observed is None:
            return result
        devices = host_isolation.wanted(ctx.desired, driver.datapath_type, ctx.observed.ofports)
        by_device = {p.device: p.port_id for p in ctx.plan.ports}
        try:
            changes, error = host_isolation.reconcile(devices, driver.host_netns)
        except CommandError as exc:
            return result.unknown(str(exc), (by_device[d] for d in devices if d in by_device))
        if error:
            result.fail("isolation", f"netdev {host_isolation.TABLE}", error,
                        [by_device[d] for d in changes.add if d in by_device])
            return result
        driver.isolation_settled = driver.datapath_type != host_isolation.ISOLATING_DATAPATH
        result.added["isolation"] = len(changes.add)
        result.removed["isolation"] = len(changes.delete) + changes.drop_table
        return result


class OpenFlow:
    phase = "openflow"

    def __init__(self, driver: OvsDriver) -> None:
        self.driver = driver

    def reconcile(self, ctx: OvsPass) -> PhaseResult:
        result = PhaseResult(self.phase, added={"flow": 0}, removed={"flow": 0})
        driver = self.driver
        assert ctx.observed is not None  # set by OvsdbRows
        flows = render_flows(ctx.plan, ctx.lvids, ctx.observed.ofports)
        try:
            changes = driver.diff_flows(ctx.desired, flows)
        except CommandError as exc:  # a bridge's flows could not be dumped: unknown, nothing written
            return result.unknown(str(exc), ctx.all_ports())
        for bridge in sorted(set(changes.add) | set(changes.delete)):
            error = openflow.apply(driver.rundir, bridge, changes.add.get(bridge, []), changes.delete.get(bridge, []))
            if error:  # one bundle: nothing of it applied
                result.fail("flows", bridge, error, ctx.all_ports())
                continue
            result.added["flow"] += len(changes.add.get(bridge, []))
            result.removed["flow"] += len(changes.delete.get(bridge, []))
        devices = {p.port_id: p.device for p in ctx.plan.ports}
        for port_id, why in sorted(filters.refused(ctx.plan).items()):  # left without flows: forwards nothing
            result.fail("filter", devices.get(port_id, port_id), why, [port_id])
        driver.installed = flows
        driver.used_ofports = {name: ctx.observed.ofports.get(name, -1) for name in ctx.desired.ports}
        return result


def _current_lvids(observed: ObservedDb) -> dict[str, int]:
    """network id -> the local VLAN its VM ports carry now (kept across restarts)."""
    out: dict[str, int] = {}
    for port in observed.owned_ports().values():
        net = dict(port.external_ids).get("kvnet-network")
        if port.kind == "port" and net and port.tag is not None:
            out.setdefault(net, port.tag)
    return out
