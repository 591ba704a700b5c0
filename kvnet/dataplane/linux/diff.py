"""diff(desired, observed) -> ChangeSet: the smallest set of kernel changes. Pure: no I/O.

Owned objects (see `state`) that are not desired are deleted; foreign objects are never touched.
A VXLAN device whose fixed settings differ is recreated (delete + add); its FDB and neighbour
entries go with it, so they are re-added rather than diffed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvnet.dataplane.linux.state import Attachment, DesiredState, Fdb, Link, Neigh, ObservedState

KINDS = ("link", "port", "fdb", "neigh")


@dataclass
class ChangeSet:
    link_add: list[Link] = field(default_factory=list)
    link_change: list[Link] = field(default_factory=list)  # the desired link; apply sets all its attributes
    link_del: list[str] = field(default_factory=list)
    attach: list[Attachment] = field(default_factory=list)
    detach: list[str] = field(default_factory=list)
    fdb_add: list[Fdb] = field(default_factory=list)
    fdb_change: list[Fdb] = field(default_factory=list)  # unicast MAC moved to another VTEP
    fdb_del: list[Fdb] = field(default_factory=list)
    neigh_add: list[Neigh] = field(default_factory=list)
    neigh_change: list[Neigh] = field(default_factory=list)
    neigh_del: list[Neigh] = field(default_factory=list)
    missing: list[Attachment] = field(default_factory=list)  # devices not created yet by their owner
    conflicts: list[str] = field(default_factory=list)  # desired names taken by foreign links

    def counts(self) -> dict[str, dict[str, int]]:
        """{"added"|"changed"|"removed": {kind: n}}; attach counts as a port change, detach as removal."""
        return {
            "added": {"link": len(self.link_add), "port": 0, "fdb": len(self.fdb_add),
                      "neigh": len(self.neigh_add)},
            "changed": {"link": len(self.link_change), "port": len(self.attach),
                        "fdb": len(self.fdb_change), "neigh": len(self.neigh_change)},
            "removed": {"link": len(self.link_del), "port": len(self.detach), "fdb": len(self.fdb_del),
                        "neigh": len(self.neigh_del)},
        }

    def __len__(self) -> int:
        return sum(sum(kind.values()) for kind in self.counts().values())


def diff(desired: DesiredState, observed: ObservedState) -> ChangeSet:
    changes = ChangeSet()
    gone = _diff_links(desired, observed, changes)
    _diff_attachments(desired, observed, changes, gone)
    # Only entries on owned links are ours, and those on links deleted in this pass vanish with them.
    ours = set(observed.owned_links()) - gone
    _diff_fdb(desired.fdb, {f for f in observed.fdb if f.dev in ours}, changes)
    _diff_neigh(desired.neigh, {n for n in observed.neigh if n.dev in ours}, changes)
    return changes


def _diff_links(desired: DesiredState, observed: ObservedState, changes: ChangeSet) -> set[str]:
    """Fill link changes; return the names of owned links this pass deletes (incl. recreated ones)."""
    gone: set[str] = set()
    for name, want in sorted(desired.links.items()):
        have = observed.links.get(name)
        if have is None:
            changes.link_add.append(want)
        elif not have.owned:
            changes.conflicts.append(name)
        elif have.kind != want.kind or have.vxlan != want.vxlan:
            changes.link_del.append(name)
            changes.link_add.append(want)
            gone.add(name)
        elif not _link_matches(want, have):
            changes.link_change.append(want)
    for name in sorted(set(observed.owned_links()) - set(desired.links)):
        changes.link_del.append(name)
        gone.add(name)
    return gone


def _link_matches(want: Link, have: Link) -> bool:
    return ((want.alias, want.mtu, want.master, want.up) == (have.alias, have.mtu, have.master, have.up)
            and (want.port is None or want.port == have.port))


def _diff_attachments(desired: DesiredState, observed: ObservedState, changes: ChangeSet,
                      gone: set[str]) -> None:
    for device, want in sorted(desired.attachments.items()):
        have = observed.links.get(device)
        if have is None:
            changes.missing.append(want)
        elif (have.master != want.master or not have.up or want.master in gone
              or (want.mtu is not None and have.mtu != want.mtu)
              or (want.port is not None and have.port != want.port)):
            changes.attach.append(want)
    owned_bridges = {n for n, link in observed.owned_links().items() if link.kind == "bridge"}
    for name, link in sorted(observed.links.items()):
        # A foreign device on a kvnet bridge that the plan no longer puts there: detach, never delete.
        if (not link.owned and link.master in owned_bridges and name not in desired.attachments):
            changes.detach.append(name)


def _diff_fdb(want: set[Fdb], have: set[Fdb], changes: ChangeSet) -> None:
    unicast_have = {(f.dev, f.mac): f for f in have if not f.flood}
    moved = {(f.dev, f.mac) for f in want - have if not f.flood and (f.dev, f.mac) in unicast_have}
    for entry in sorted(want - have):
        (changes.fdb_change if (entry.dev, entry.mac) in moved and not entry.flood
         else changes.fdb_add).append(entry)
    changes.fdb_del.extend(sorted(f for f in have - want if f.flood or (f.dev, f.mac) not in moved))


def _diff_neigh(want: set[Neigh], have: set[Neigh], changes: ChangeSet) -> None:
    have_keys = {(n.dev, n.ip) for n in have}
    want_keys = {(n.dev, n.ip) for n in want}
    for entry in sorted(want - have):
        (changes.neigh_change if (entry.dev, entry.ip) in have_keys else changes.neigh_add).append(entry)
    changes.neigh_del.extend(sorted(n for n in have - want if (n.dev, n.ip) not in want_keys))
