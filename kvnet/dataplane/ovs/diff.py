"""diff(desired, observed) -> the smallest OVSDB and OpenFlow changes. Pure: no I/O.

OVSDB: owned rows not desired are deleted, desired rows missing are added, owned rows whose columns
differ are updated in place (a port on the wrong bridge, or whose interface type or options differ,
is deleted and re-added: options are a map that an update would only merge into). A desired
name held by a row kvnet does not own is a conflict, reported and left alone.

OpenFlow: a flow's cookie hashes its whole text (state.Flow.cookie), so a flow is present exactly when
an owned flow with that cookie, table and priority is. Nothing else is compared; changed flows are a
delete of the old cookie plus an add of the new one, applied in one bundle (see openflow.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from kvnet.dataplane.ovs.state import Bridge, DesiredDb, Flow, ObservedDb, ObservedFlow, Port


@dataclass
class DbChanges:
    bridge_add: list[Bridge] = field(default_factory=list)
    bridge_change: list[Bridge] = field(default_factory=list)
    bridge_del: list[str] = field(default_factory=list)
    port_add: list[Port] = field(default_factory=list)
    port_change: list[Port] = field(default_factory=list)  # the desired port: every column is set
    port_del: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.bridge_add or self.bridge_change or self.bridge_del or self.port_add
                    or self.port_change or self.port_del)


@dataclass
class FlowChanges:
    add: dict[str, list[Flow]] = field(default_factory=lambda: defaultdict(list))
    delete: dict[str, list[ObservedFlow]] = field(default_factory=lambda: defaultdict(list))

    def count(self, kind: str) -> int:
        return sum(len(v) for v in (self.add if kind == "add" else self.delete).values())


def diff_db(desired: DesiredDb, observed: ObservedDb) -> DbChanges:
    changes = DbChanges()
    owned_bridges = observed.owned_bridges()
    for name, want in sorted(desired.bridges.items()):
        have = observed.bridges.get(name)
        if have is None:
            changes.bridge_add.append(want)
        elif name not in owned_bridges:
            changes.conflicts.append(f"bridge {name} exists but is not kvnet's; left alone")
        elif have != want:
            changes.bridge_change.append(want)
    changes.bridge_del = sorted(set(owned_bridges) - set(desired.bridges))
    for name, want in sorted(desired.ports.items()):
        have = observed.ports.get(name)
        if have is None:
            changes.port_add.append(want)
        elif not have.owned:
            changes.conflicts.append(f"port {name} on {have.bridge} exists but is not kvnet's; left alone")
        elif (have.bridge, have.type, have.options) != (want.bridge, want.type, want.options):
            changes.port_del.append(name)
            changes.port_add.append(want)
        elif have != want:
            changes.port_change.append(want)
    deleted_bridges = set(changes.bridge_del)
    for name, have in sorted(observed.owned_ports().items()):
        if name not in desired.ports and have.bridge not in deleted_bridges:  # del-br takes its ports along
            changes.port_del.append(name)
    return changes


def diff_flows(desired: list[Flow], observed: list[ObservedFlow]) -> FlowChanges:
    changes = FlowChanges()
    have = {(f.bridge, f.cookie, f.table, f.priority) for f in observed}
    want = {(f.bridge, f.cookie, f.table, f.priority) for f in desired}
    for flow in desired:
        if (flow.bridge, flow.cookie, flow.table, flow.priority) not in have:
            changes.add[flow.bridge].append(flow)
    for seen in observed:
        if (seen.bridge, seen.cookie, seen.table, seen.priority) not in want:
            changes.delete[seen.bridge].append(seen)
    return changes
