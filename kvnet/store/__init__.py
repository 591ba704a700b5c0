"""Stores: one interface (`Store`), engines chosen by URL."""

from __future__ import annotations

from kvnet.errors import InvalidInput
from kvnet.store.base import Store


def open_store(url: str) -> Store:
    """`sqlite:///path/file.db` (the embedded default) or `sqlite://:memory:`."""
    if url.startswith("sqlite://"):
        from kvnet.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite://")
        return SQLiteStore(":memory:" if path in (":memory:", "/:memory:") else path)
    raise InvalidInput(f"unknown store URL {url!r} (expected sqlite:///path)", field="store")
