"""Lookups shared by the per-kind rules."""

from __future__ import annotations

from typing import TypeVar

from kvnet.errors import Conflict, NotFound
from kvnet.model.resources import Port, Resource, kind_prefix, resource_key
from kvnet.store.txn import Txn

R = TypeVar("R", bound=Resource)


def load(txn: Txn, cls: type[R], rid: str, field: str | None = None) -> R:
    data = txn.get(resource_key(cls.kind, rid))
    if data is None:
        raise NotFound(f"no {cls.kind[:-1]} with id {rid}", field=field)
    return cls.model_validate(data)


def load_all(txn: Txn, cls: type[R], *, track: bool = True) -> list[R]:
    return [cls.model_validate(v) for v in txn.list(kind_prefix(cls.kind), track=track)]


def save(txn: Txn, obj: Resource) -> None:
    txn.put(obj.key, obj.model_dump(mode="json"))


def remove(txn: Txn, obj: Resource) -> None:
    txn.delete(obj.key)


def ports_of_network(txn: Txn, network_id: str) -> list[Port]:
    return [p for p in load_all(txn, Port) if p.network_id == network_id]


def immutable(old: Resource, new: Resource, *fields: str) -> None:
    for name in fields:
        if getattr(old, name) != getattr(new, name):
            raise Conflict("cannot be changed after creation (delete and re-create instead)", field=name)
