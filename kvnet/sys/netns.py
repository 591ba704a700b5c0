"""Network namespaces: create, delete, list by prefix. Never touches the root namespace."""

from __future__ import annotations

import os
from pathlib import Path

from kvnet.sys.cmd import run

NETNS_DIR = Path("/run/netns")


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def add(name: str, *, loopback_up: bool = True, disable_ipv6: bool = True) -> None:
    """Create namespace `name` with loopback up and IPv6 off (router solicitations flood otherwise)."""
    run(["ip", "netns", "add", name])
    if loopback_up:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
    if disable_ipv6:
        run(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1"], netns=name)


def delete(name: str) -> None:
    if exists(name):
        run(["ip", "netns", "del", name], check=False)


def list_with_prefix(prefix: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))


def delete_with_prefix(prefix: str) -> list[str]:
    """Delete every namespace whose name starts with `prefix` (a lab's or a test's own prefix)."""
    if len(prefix) < 4:
        raise ValueError(f"refusing to delete namespaces by the short prefix {prefix!r}")
    names = list_with_prefix(prefix)
    for name in names:
        delete(name)
    return names


def add_veth(a: str, ns_a: str, b: str, ns_b: str, *, mtu: int | None = None) -> None:
    """A veth pair with end `a` in `ns_a` and end `b` in `ns_b`, both up; never in the root namespace."""
    extra = ["mtu", str(mtu)] if mtu else []
    run(["ip", "-n", ns_a, "link", "add", a, *extra, "type", "veth", "peer", "name", b, *extra, "netns", ns_b])
    run(["ip", "-n", ns_a, "link", "set", a, "up"])
    run(["ip", "-n", ns_b, "link", "set", b, "up"])
