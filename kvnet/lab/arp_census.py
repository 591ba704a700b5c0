"""Which ARP crossed the underlay: the hosts' own, or tenants' inside the tunnels.

A capture on the underlay switch sees two different things that a filter on outer headers mixes up or
misses: hosts resolving each other's tunnel IPs (outer ARP: `underlay_host_arp`; OVS does it on first
use of a tunnel peer) and tenant ARP carried inside VXLAN or GRE (`tenant_arp_in_tunnels`: 0 when the
ARP responder answers every VM locally). A filter like `arp and ether broadcast` counts only the first,
so a tenant ARP flood would pass unseen. This module decodes each frame (Ethernet, IPv4, UDP/4789 VXLAN
or GRE with transparent Ethernet bridging) and counts both, from frames recorded as pcap
(`kvnet.lab.probe.arp_capture`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ETH_ARP = 0x0806
ETH_IPV4 = 0x0800
ETH_VLAN = (0x8100, 0x88A8)
GRE_TEB = 0x6558  # GRE carrying Ethernet frames
VXLAN_PORT = 4789
VXLAN_HEADER = 8
IPPROTO_UDP = 17
IPPROTO_GRE = 47
# What the capture needs to see: outer ARP and every tunnelled frame (classified here, not by BPF).
BPF = f"arp or udp port {VXLAN_PORT} or ip proto {IPPROTO_GRE}"

@dataclass
class ArpCensus:
    underlay_host_arp: int = 0
    tenant_arp_in_tunnels: int = 0
    tunnel_frames: int = 0  # every tunnelled frame seen: a census of none proves nothing

    @classmethod
    def of(cls, frames: list[bytes]) -> ArpCensus:
        census = cls()
        for frame in frames:
            kind = classify(frame)
            if kind == "host":
                census.underlay_host_arp += 1
            elif kind is not None:
                census.tunnel_frames += 1
                census.tenant_arp_in_tunnels += kind == "tunnel-arp"
        return census


Kind = Literal["host", "tunnel", "tunnel-arp"]


def classify(frame: bytes) -> Kind | None:
    """"host" for an ARP frame on the underlay itself, "tunnel-arp" for ARP inside VXLAN or GRE,
    "tunnel" for any other tunnelled frame, None for the rest."""
    ethertype, payload = _ethernet(frame)
    if ethertype == ETH_ARP:
        return "host"
    if ethertype != ETH_IPV4 or len(payload) < 20:
        return None
    header_len = (payload[0] & 0x0F) * 4
    proto, body = payload[9], payload[header_len:]
    inner: bytes | None = None
    if proto == IPPROTO_UDP and len(body) >= 8 and struct.unpack("!H", body[2:4])[0] == VXLAN_PORT:
        inner = body[8 + VXLAN_HEADER:]
    elif proto == IPPROTO_GRE:
        inner = _gre_payload(body)
    if inner is None:
        return None
    return "tunnel-arp" if _ethernet(inner)[0] == ETH_ARP else "tunnel"


def _ethernet(frame: bytes) -> tuple[int | None, bytes]:
    """(ethertype, payload), skipping 802.1Q/802.1ad tags."""
    offset = 12
    while len(frame) >= offset + 2:
        ethertype = struct.unpack("!H", frame[offset:offset + 2])[0]
        if ethertype not in ETH_VLAN:
            return ethertype, frame[offset + 2:]
        offset += 4
    return None, b""


def _gre_payload(gre: bytes) -> bytes | None:
    """The Ethernet frame a GRE packet carries (RFC 2890: optional checksum, key, sequence words)."""
    if len(gre) < 4:
        return None
    flags, proto = struct.unpack("!HH", gre[:4])
    if proto != GRE_TEB:
        return None
    length = 4 + 4 * sum(1 for bit in (0x8000, 0x2000, 0x1000) if flags & bit)
    return gre[length:]


def read_pcap(path: Path) -> list[bytes]:
    """The frames of a classic pcap file (either byte order, micro- or nanosecond stamps). A file cut
    short by a capture that was stopped mid-write yields the frames before the cut."""
    return list(_records(path.read_bytes()))


def _records(data: bytes) -> Iterator[bytes]:
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError("not a pcap file (unknown magic)")
    offset = 24
    while offset + 16 <= len(data):
        incl_len = struct.unpack(order + "I", data[offset + 8:offset + 12])[0]
        if offset + 16 + incl_len > len(data):
            return
        yield data[offset + 16:offset + 16 + incl_len]
        offset += 16 + incl_len
