"""OvsDriver: one level-triggered reconcile pass against one OVS instance, in two phases.

1. OVSDB: render the rows (bridges, ports with their local VLAN) -> diff against the IDL -> one
   transaction, which returns once ovs-vswitchd has configured the ports (their ofports are known).
2. OpenFlow: render the flows (they need the ofports) -> dump kvnet's flows per bridge -> diff by
   cookie -> one atomic bundle per bridge.

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

import time
from collections.abc import Callable
from pathlib import Path

from kvnet.dataplane import ReconcileResult
from kvnet.dataplane.linux.router import RouterDriver
from kvnet.dataplane.linux.router_diff import RouterChanges
from kvnet.dataplane.ovs import host_isolation, openflow
from kvnet.dataplane.ovs.diff import DbChanges, FlowChanges, diff_db, diff_flows
from kvnet.dataplane.ovs.flows import is_redirect, render_flows, stale_redirects
from kvnet.dataplane.ovs.monitor import RestartMonitor
from kvnet.dataplane.ovs.ovsdb import Ovsdb
from kvnet.dataplane.ovs.render import assign_lvids, render_db
from kvnet.dataplane.ovs.router_legs import legs_up
from kvnet.dataplane.ovs.state import INT_BRIDGE, DesiredDb, Flow, ObservedDb
from kvnet.plan import HostPlan

DEFAULT_RUNDIR = Path("/var/run/openvswitch")


class OvsDriver:
    def __init__(self, rundir: Path = DEFAULT_RUNDIR, *, host_netns: str | None, datapath_type: str = "system",
                 timeout: float = 10.0, routers: RouterDriver | None = None) -> None:
        self.rundir = Path(rundir)
        self.host_netns = host_netns  # required: isolation under `netdev` runs nft there
        self.isolation_settled = False  # under the kernel datapath: no table left from `netdev` (checked once)
        self.routers = routers
        self.datapath_type = datapath_type
        self.db = Ovsdb(f"unix:{self.rundir / 'db.sock'}", timeout)
        self.monitor: RestartMonitor | None = None
        self.installed: list[Flow] = []  # what the last pass left programmed (the monitor's reference)
        self.used_ofports: dict[str, int] = {}  # kvnet's ports and the ofports the last pass rendered with

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
        return diff_db(desired_db, observed), self._diff_flows(desired_db, flows), isolation

    def _diff_flows(self, desired_db: DesiredDb, flows: list[Flow]) -> FlowChanges:
        bridges = sorted(set(desired_db.bridges) | {f.bridge for f in flows})
        return diff_flows(flows, [f for bridge in bridges for f in openflow.dump(self.rundir, bridge)])

    def _route(self, plan: HostPlan) -> tuple[RouterChanges, list[str]]:
        """The shared router pass, then the legs' host ends up (they are kv-int ports from here on)."""
        if self.routers is None:
            return RouterChanges(), ["routers planned, but this OVS driver has no router pass"] * bool(plan.routers)
        routed, errors = self.routers.reconcile(plan)
        raised, up_errors = legs_up(plan, self.routers.host_netns)
        routed.changed["leg"] += raised
        return routed, errors + up_errors

    def _stop_stale_redirects(self, plan: HostPlan) -> list[str]:
        """Delete the FIP holders' redirect flows the plan no longer has before the router pass can
        delete their `fq-` leg (the Linux driver's order): their frames would chase a vanished port
        for one pass. Only what the last pass installed is looked at (after an agent restart the
        ordinary flow pass deletes them, one pass later)."""
        if not any(is_redirect(f) for f in self.installed):
            return []
        observed = self.db.observe()
        stale = stale_redirects(self.installed, render_flows(plan, assign_lvids(plan, _current_lvids(observed)),
                                                             observed.ofports))
        error = openflow.apply(self.rundir, INT_BRIDGE, [], stale) if stale else None
        return [error] if error else []

    def _isolate(self, desired_db: DesiredDb,
                 ofports: dict[str, int]) -> tuple[host_isolation.IsolationChanges, list[str]]:
        """The host isolation from the same ofports that decide ACTIVE, so a port is isolated before it is
        reported ACTIVE (and its VM resumed). Under the kernel datapath (fixed for this driver's life)
        only the first pass looks, for a table left from `netdev`."""
        if self.isolation_settled:
            return host_isolation.IsolationChanges(), []
        changes, errors = host_isolation.reconcile(host_isolation.wanted(desired_db, self.datapath_type, ofports),
                                                   self.host_netns)
        self.isolation_settled = self.datapath_type != host_isolation.ISOLATING_DATAPATH and not errors
        return changes, errors

    def reconcile(self, plan: HostPlan) -> ReconcileResult:
        start = time.perf_counter()
        errors = self._stop_stale_redirects(plan)
        routed, route_errors = self._route(plan)
        errors += route_errors
        observed = self.db.observe()
        lvids = assign_lvids(plan, _current_lvids(observed))
        desired_db = render_db(plan, lvids, self.datapath_type)
        db_changes = diff_db(desired_db, observed)
        error = self.db.apply(db_changes)
        if error:
            errors.append(error)
        if not db_changes.empty:
            observed = self.db.observe()
        isolated, isolation_errors = self._isolate(desired_db, observed.ofports)
        errors += isolation_errors
        flows = render_flows(plan, lvids, observed.ofports)
        bridges = sorted(set(desired_db.bridges) | {f.bridge for f in flows})
        flow_changes = self._diff_flows(desired_db, flows)
        for bridge in bridges:
            error = openflow.apply(self.rundir, bridge, flow_changes.add.get(bridge, []),
                                   flow_changes.delete.get(bridge, []))
            if error:
                errors.append(error)
        self.installed = flows
        self.used_ofports = {name: observed.ofports.get(name, -1) for name in desired_db.ports}
        if self.routers is not None:
            errors += self.routers.after_l2(routed)  # the legs are on kv-int with their flows now
        errors += db_changes.conflicts
        errors += [f"network {n}: type not supported by the OVS driver" for n in desired_db.unsupported]
        missing = [p for p in plan.ports if observed.ofports.get(p.device, -1) <= 0]
        return ReconcileResult(
            added=_counts(db_changes, flow_changes, "add") | routed.added | {"isolation": len(isolated.add)},
            changed=_counts(db_changes, flow_changes, "change") | routed.changed,
            removed=_counts(db_changes, flow_changes, "del") | routed.removed
            | {"isolation": len(isolated.delete) + isolated.drop_table},
            missing_ports=tuple(p.port_id for p in missing), missing_devices=tuple(p.device for p in missing),
            errors=tuple(errors), duration_ms=(time.perf_counter() - start) * 1000)


def _current_lvids(observed: ObservedDb) -> dict[str, int]:
    """network id -> the local VLAN its VM ports carry now (kept across restarts)."""
    out: dict[str, int] = {}
    for port in observed.owned_ports().values():
        net = dict(port.external_ids).get("kvnet-network")
        if port.kind == "port" and net and port.tag is not None:
            out.setdefault(net, port.tag)
    return out


def _counts(db: DbChanges, flows: FlowChanges, what: str) -> dict[str, int]:
    if what == "add":
        return {"bridge": len(db.bridge_add), "port": len(db.port_add), "flow": flows.count("add")}
    if what == "change":
        return {"bridge": len(db.bridge_change), "port": len(db.port_change), "flow": 0}
    return {"bridge": len(db.bridge_del), "port": len(db.port_del), "flow": flows.count("delete")}
