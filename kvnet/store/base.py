"""The store interface: a revisioned key-value store with transactions and watch.

These are exactly etcd's primitives, so SQLite (the embedded default) and etcd implement the same
class and callers never know which one they talk to:

- every successful `commit` bumps one global revision; all keys it writes share it;
- `commit` is all-or-nothing and guarded by `Compare`s on mod_revision (0 = key absent), so an
  optimistic read-validate-write cycle (`kvnet.store.txn.transact`) never writes half a change;
- `wait_events(prefix, from_revision)` returns ordered change events from that revision on (inclusive),
  or raises `Compacted` when the store no longer keeps that history: the caller re-lists and resumes.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal


def prefix_end(prefix: str) -> str:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True)
class Entry:
    key: str
    value: dict[str, Any]
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class Event:
    type: Literal["put", "delete"]
    key: str
    value: dict[str, Any] | None
    revision: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "key": self.key, "value": self.value, "revision": self.revision}


@dataclass(frozen=True)
class Compare:
    """Holds when the key's mod_revision equals `mod_revision` (0: the key does not exist), or, for a
    range compare (`range_end` set), when every key in [key, range_end) has mod_revision below it."""

    key: str
    mod_revision: int
    range_end: str | None = None


@dataclass(frozen=True)
class Put:
    key: str
    value: dict[str, Any]


@dataclass(frozen=True)
class Delete:
    key: str


Op = Put | Delete


class Store(ABC):
    """One interface for every storage engine. Implementations are safe to share between threads."""

    @abstractmethod
    def get(self, key: str) -> Entry | None: ...

    @abstractmethod
    def range(self, prefix: str) -> tuple[list[Entry], int]:
        """All entries under `prefix`, sorted by key, read at one revision (returned with them)."""

    def keys(self, prefix: str) -> list[str]:
        """Just the keys under `prefix` (etcd's keys_only range): allocation scans need no values."""
        return [e.key for e in self.range(prefix)[0]]

    @abstractmethod
    def commit(self, compares: list[Compare], ops: list[Op]) -> int:
        """Apply `ops` atomically if every compare holds; return the new revision.

        Raises `RetryableConflict` when a compare fails (nothing is written)."""

    @abstractmethod
    def revision(self) -> int: ...

    @abstractmethod
    def wait_events(self, prefix: str, from_revision: int, timeout: float) -> list[Event]:
        """Events under `prefix` with revision >= from_revision, waiting up to `timeout` seconds for
        the first one; [] on timeout. Raises `Compacted` if that history is gone."""

    @abstractmethod
    def compact_revision(self) -> int:
        """Events below this revision are no longer kept."""

    def compact(self, revision: int) -> None:
        """Forget the history below `revision` (etcd's compaction); watchers from before it get `Compacted`."""
        raise NotImplementedError(f"{type(self).__name__} cannot compact")

    @abstractmethod
    def close(self) -> None: ...

    def write_lock(self) -> contextlib.AbstractContextManager[object]:
        """Held around a whole read-validate-commit cycle. An engine with a single writer (SQLite)
        serialises here so transactions never conflict; a distributed one relies on compares."""
        return contextlib.nullcontext()

    def watch(self, prefix: str, from_revision: int, poll_timeout: float = 1.0) -> Iterator[Event]:
        """Every event from `from_revision` on, forever (until the caller stops iterating)."""
        next_rev = from_revision
        while True:
            for event in self.wait_events(prefix, next_rev, poll_timeout):
                next_rev = event.revision + 1
                yield event
