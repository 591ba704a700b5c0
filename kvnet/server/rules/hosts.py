"""Hosts: a host with ports bound to it cannot be deleted; draining unbinds them first.

Deleting a host that still carries VMs used to succeed, and its agent then removed every bridge, tunnel
and router namespace under running VMs while their ports stayed ACTIVE on a host that no longer
existed. Now the delete is refused, naming what is bound, and `drain` unbinds those ports (they go
DOWN, the host's agent removes their objects while its record still exists) so that it can follow.
Routers need no drain: their placement follows the network hosts that exist (kvnet.agent.routing).
"""

from __future__ import annotations

from kvnet.errors import Conflict
from kvnet.model.resources import Host, Port
from kvnet.server.rules import ports
from kvnet.server.rules.common import load_all, save
from kvnet.store.txn import Txn

LISTED = 5


def create(txn: Txn, host: Host) -> None:
    """Nothing to allocate."""


def update(txn: Txn, old: Host, new: Host) -> None:
    """Any field may change (the model keeps the name equal to the id)."""


def delete(txn: Txn, host: Host) -> None:
    bound = bound_ports(txn, host)
    if bound:
        names = ", ".join(p.name or p.id for p in bound[:LISTED]) + (", ..." if len(bound) > LISTED else "")
        raise Conflict(f"host {host.id} still has {len(bound)} port(s) bound to it ({names}); unbind them or "
                       f"drain the host first (`kvnet host delete {host.id} --drain`, or POST "
                       f"/v1/hosts/{host.id}/drain)", field="id")


def drain(txn: Txn, host: Host) -> int:
    """Unbind every port bound to `host`; returns how many."""
    bound = bound_ports(txn, host)
    for old in bound:
        new = old.model_copy(update={"binding_host": None})
        ports.update(txn, old, new)
        new.status_detail = {"reason": f"host {host.id} was drained"}
        save(txn, new)
    return len(bound)


def bound_ports(txn: Txn, host: Host) -> list[Port]:
    """VM ports bound to the host (router ports are placed by kvnet, never bound by an operator)."""
    return sorted((p for p in load_all(txn, Port) if p.binding_host == host.id), key=lambda p: (p.name, p.id))
