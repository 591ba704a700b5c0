"""A bridge's cap on learned FDB entries, over rtnetlink: `IFLA_BR_FDB_MAX_LEARNED` (kernel 6.8+).

iproute2 6.1 (Debian 12) can neither set nor show it (`ip link set <br> type bridge fdb_max_learned N`
came with iproute2 6.8), so kvnet speaks netlink for this one attribute: a dump of the namespace's
links for each bridge's (learned, cap), and one RTM_NEWLINK to set a cap. A namespace is entered from
a short-lived thread (setns applies to the calling thread only), as `garp` does.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

RTM_NEWLINK, RTM_GETLINK = 16, 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLA_F_NESTED = 0x8000
IFLA_IFNAME, IFLA_LINKINFO, IFLA_EXT_MASK = 3, 18, 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_BR_FDB_N_LEARNED, IFLA_BR_FDB_MAX_LEARNED = 48, 49
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
T = TypeVar("T")


class BridgeLimits(Protocol):
    def read(self, netns: str | None) -> dict[str, tuple[int, int | None]]:
        """bridge -> (learned entries, cap; None when the kernel has no such attribute)."""
        ...

    def set_cap(self, netns: str | None, bridge: str, cap: int) -> str | None:
        """Set a bridge's cap; the kernel's error, or None."""
        ...


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("HH", length, kind) + payload + b"\0" * (-length % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    out, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            break
        out[kind & ~NLA_F_NESTED] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _in_netns(netns: str | None, work: Callable[[], T]) -> T:
    """Run `work` in namespace `netns` (None: this one), from a thread of its own."""
    if netns is None:
        return work()
    box: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}: {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(fd)
            box.append(work())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"netlink-{netns}", daemon=True)
    thread.start()
    thread.join(timeout=10)
    if errors:
        raise errors[0]
    if not box:
        raise TimeoutError(f"netlink in {netns} did not answer")
    return box[0]


def _talk(message_type: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
    """Send one request, collect (type, payload) of the answers until DONE or the ACK."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.send(struct.pack("IHHII", 16 + len(body), message_type, flags, 1, 0) + body)
        out = []
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _, _, _ = struct.unpack_from("IHHII", data, offset)
                payload = data[offset + 16:offset + length]
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    error = struct.unpack_from("i", payload)[0]
                    if error:
                        raise OSError(-error, os.strerror(-error))
                    return out
                out.append((kind, payload))
                offset += (length + 3) & ~3


_IFINFO = struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)


# Dump only bridges (the kernel filters by kind, as for `ip link show type bridge`), without VF details:
# a host with 1,000 taps otherwise answers with a megabyte for the 10 bridges kvnet asks about.
_BRIDGES_ONLY = (_attr(IFLA_LINKINFO | NLA_F_NESTED, _attr(IFLA_INFO_KIND, b"bridge\0"))
                 + _attr(IFLA_EXT_MASK, struct.pack("I", RTEXT_FILTER_SKIP_STATS)))


def _read() -> dict[str, tuple[int, int | None]]:
    out = {}
    for kind, payload in _talk(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, _IFINFO + _BRIDGES_ONLY):
        if kind != RTM_NEWLINK:
            continue
        attrs = _attrs(payload[16:])
        info = _attrs(attrs.get(IFLA_LINKINFO, b""))
        if info.get(IFLA_INFO_KIND, b"").rstrip(b"\0") != b"bridge":
            continue
        data = _attrs(info.get(IFLA_INFO_DATA, b""))
        learned = struct.unpack("I", data[IFLA_BR_FDB_N_LEARNED][:4])[0] if IFLA_BR_FDB_N_LEARNED in data else 0
        cap = struct.unpack("I", data[IFLA_BR_FDB_MAX_LEARNED][:4])[0] if IFLA_BR_FDB_MAX_LEARNED in data else None
        out[attrs[IFLA_IFNAME].rstrip(b"\0").decode()] = (learned, cap)
    return out


def _set(bridge: str, cap: int) -> None:
    data = _attr(IFLA_INFO_DATA | NLA_F_NESTED, _attr(IFLA_BR_FDB_MAX_LEARNED, struct.pack("I", cap)))
    info = _attr(IFLA_LINKINFO | NLA_F_NESTED, _attr(IFLA_INFO_KIND, b"bridge\0") + data)
    _talk(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, _IFINFO + _attr(IFLA_IFNAME, bridge.encode() + b"\0") + info)


class NetlinkBridgeLimits:
    def read(self, netns: str | None) -> dict[str, tuple[int, int | None]]:
        return _in_netns(netns, _read)

    def set_cap(self, netns: str | None, bridge: str, cap: int) -> str | None:
        try:
            _in_netns(netns, lambda: _set(bridge, cap))
        except OSError as exc:
            return f"setting fdb_max_learned on {bridge}: {exc.strerror or exc}"
        return None


NETLINK = NetlinkBridgeLimits()
