"""What a benchmark path is: a context manager that builds a topology and yields its endpoints.

Any topology can be measured — a reference construct built by hand (`paths`) or, later, one built by
the kvnet lab/agent — as long as it provides `Path`: a `name`, an optional `reference` (the name of
the path it should be compared to), and `build(prefix)` yielding `Endpoints` and tearing down after.
Paths are found by name in a registry.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kvnet.sys import netns
from kvnet.sys.cmd import run, run_json


@dataclass(frozen=True)
class Endpoints:
    """Where to send from and where to count. `dst_mac` is the first hop's MAC (the generator
    writes whole Ethernet frames); `dst_ip` is the address the sender targets (a floating IP for
    DNAT). `host_ns` is the receiving host's namespace, where background CPU load runs."""

    sender_ns: str
    sender_dev: str
    src_mac: str
    src_ip: str
    dst_mac: str
    dst_ip: str
    receiver_ns: str
    receiver_dev: str
    host_ns: str
    warm: Callable[[], None] | None = None


@runtime_checkable
class Path(Protocol):
    name: str
    reference: str | None
    description: str

    def build(self, prefix: str) -> AbstractContextManager[Endpoints]:
        """Build the topology in namespaces named `prefix`+something; tear all of it down on exit."""
        ...


_REGISTRY: dict[str, Path] = {}


def register(path: Path) -> Path:
    _REGISTRY[path.name] = path
    return path


def get(name: str) -> Path:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataplane path {name!r}; known: {', '.join(names())}") from None


def names() -> list[str]:
    return list(_REGISTRY)


def unique_prefix(base: str) -> str:
    """`base` (kvtB for tests, kvbd for real runs) plus a random suffix."""
    return f"{base}{secrets.token_hex(3)}"


class Namespaces:
    """The namespaces one topology creates; `close` deletes those, in reverse order, and then any other
    of its prefix (one made just as a signal interrupted `add`, before it was recorded)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.created: list[str] = []

    def add(self, role: str, *, router: bool = False) -> str:
        name = f"{self.prefix}-{role}"
        netns.add(name)
        self.created.append(name)
        if router:
            run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                 "net.ipv4.conf.default.rp_filter=0"], netns=name)
        return name

    def close(self) -> None:
        for name in reversed(self.created):
            netns.delete(name)
        self.created.clear()
        netns.delete_with_prefix(f"{self.prefix}-")


@contextmanager
def namespaces(prefix: str) -> Iterator[Namespaces]:
    ns = Namespaces(prefix)
    try:
        yield ns
    finally:
        ns.close()


def mac_of(ns: str, dev: str) -> str:
    return str(run_json(["ip", "-n", ns, "-j", "link", "show", "dev", dev])[0]["address"])


def addr(ns: str, dev: str, cidr: str) -> None:
    run(["ip", "-n", ns, "addr", "add", cidr, "dev", dev])


def route(ns: str, *spec: str) -> None:
    run(["ip", "-n", ns, "route", "add", *spec])
