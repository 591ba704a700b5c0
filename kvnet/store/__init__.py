"""Stores: one interface (`Store`), engines chosen by URL."""

from __future__ import annotations

import socket
from pathlib import Path

from kvnet.errors import InvalidInput
from kvnet.store.base import Store

DEFAULT_STORE = f"sqlite:///{Path.home()}/.local/share/kvnet/kvnet.db"


def open_store(url: str) -> Store:
    """`sqlite:///path/file.db` (the embedded default), `sqlite://:memory:`, or
    `etcd://HOST:PORT[,HOST:PORT...]` (an etcd cluster: any listed member will do)."""
    if url.startswith("sqlite://"):
        from kvnet.store.sqlite import SQLiteStore

        path = url.removeprefix("sqlite://")
        return SQLiteStore(":memory:" if path in (":memory:", "/:memory:") else path)
    if url.startswith("etcd://"):
        from kvnet.store.etcd import EtcdStore

        return EtcdStore(etcd_endpoints(url))
    raise InvalidInput(f"unknown store URL {url!r} (expected sqlite:///path or etcd://HOST:PORT,...)", field="store")


def etcd_endpoints(url: str) -> list[str]:
    """`etcd://a:2379,b:2379` -> ["ip-of-a:2379", "ip-of-b:2379"] (names resolved once, here)."""
    endpoints = []
    for item in url.removeprefix("etcd://").strip("/").split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise InvalidInput(f"{item!r} is not HOST:PORT in store URL {url!r}", field="store")
        try:
            address = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except OSError as exc:
            raise InvalidInput(f"cannot resolve etcd host {host!r}: {exc}", field="store") from None
        endpoints.append(f"{address}:{port}")
    return endpoints
