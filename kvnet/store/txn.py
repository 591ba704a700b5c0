"""Optimistic transactions over any `Store`: read, validate, write, commit with compares.

A `Txn` records what it read (key -> mod_revision, or a prefix -> the revision it was listed at) and
buffers its writes; `transact` commits them guarded by those reads and retries the whole function when
another writer got there first. Business logic is written once and behaves the same on SQLite (where
the store's write lock makes conflicts impossible) and on etcd (where compares catch them).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kvnet.errors import RetryableConflict
from kvnet.store.base import Compare, Delete, Op, Put, Store, prefix_end

T = TypeVar("T")
MAX_ATTEMPTS = 20


class Txn:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._reads: dict[str, int] = {}
        self._ranges: dict[str, int] = {}
        self._ops: dict[str, Op] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        if key in self._ops:
            op = self._ops[key]
            return op.value if isinstance(op, Put) else None
        entry = self.store.get(key)
        self._reads.setdefault(key, entry.mod_revision if entry else 0)
        return entry.value if entry else None

    def list(self, prefix: str, *, track: bool = True) -> list[dict[str, Any]]:
        """Values under `prefix` including this transaction's own writes. With `track`, the commit
        fails if any key under the prefix is written meanwhile (a new subnet that would overlap);
        without it, only the keys later read with `get` are guarded (allocation scans)."""
        entries, revision = self.store.range(prefix)
        if track:
            self._ranges.setdefault(prefix, revision)
        values = {e.key: e.value for e in entries}
        for key, op in self._ops.items():
            if key.startswith(prefix):
                if isinstance(op, Put):
                    values[key] = op.value
                else:
                    values.pop(key, None)
        return [values[k] for k in sorted(values)]

    def keys(self, prefix: str) -> set[str]:
        """Keys under `prefix` (untracked), with this transaction's writes applied."""
        keys = set(self.store.keys(prefix))
        for key, op in self._ops.items():
            if key.startswith(prefix):
                (keys.add if isinstance(op, Put) else keys.discard)(key)
        return keys

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._ops[key] = Put(key, value)

    def delete(self, key: str) -> None:
        self._ops[key] = Delete(key)

    def commit(self) -> int | None:
        if not self._ops:
            return None
        compares = [Compare(k, rev) for k, rev in self._reads.items()]
        compares += [Compare(p, rev + 1, range_end=prefix_end(p)) for p, rev in self._ranges.items()]
        return self.store.commit(compares, list(self._ops.values()))


def transact(store: Store, fn: Callable[[Txn], T]) -> tuple[T, int | None]:
    """Run `fn` in a transaction and commit it; returns (fn's result, new revision or None if it
    wrote nothing). Retries on conflict; errors raised by `fn` abort without writing anything."""
    for attempt in range(MAX_ATTEMPTS):
        with store.write_lock():
            txn = Txn(store)
            result = fn(txn)
            try:
                return result, txn.commit()
            except RetryableConflict:
                pass
        # Only a distributed store (etcd) gets here: writers racing for one hot key back off a random,
        # growing while so that one of them wins each round instead of all retrying in lockstep.
        time.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))
    raise RetryableConflict(f"gave up after {MAX_ATTEMPTS} conflicting attempts; the store is busy, retry")
