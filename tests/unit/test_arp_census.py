"""The underlay ARP census decodes frames by hand: outer ARP vs ARP inside VXLAN or GRE (issue #13, 6)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kvnet.lab.arp_census import ArpCensus, classify, read_pcap

MACS = bytes.fromhex("ffffffffffff") + bytes.fromhex("020000000001")


def eth(ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return MACS + tag + struct.pack("!H", ethertype) + payload


ARP = eth(0x0806, bytes(28))
INNER_IP = eth(0x0800, bytes(20))


def ipv4(proto: int, payload: bytes, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    header = bytes([0x40 | ihl, 0]) + struct.pack("!H", 20 + len(options) + len(payload)) + bytes(5) + \
        bytes([proto]) + bytes(10) + options
    return header + payload


def vxlan(inner: bytes, port: int = 4789) -> bytes:
    return eth(0x0800, ipv4(17, struct.pack("!HHHH", 50000, port, 16 + len(inner), 0) + bytes(8) + inner))


def gre(inner: bytes, flags: int = 0x2000, proto: int = 0x6558) -> bytes:
    words = sum(1 for bit in (0x8000, 0x2000, 0x1000) if flags & bit)
    return eth(0x0800, ipv4(47, struct.pack("!HH", flags, proto) + bytes(4 * words) + inner))


@pytest.mark.parametrize(("frame", "kind"), [
    (ARP, "host"),
    (eth(0x0806, bytes(28), vlan=100), "host"),
    (vxlan(ARP), "tunnel-arp"),
    (vxlan(INNER_IP), "tunnel"),
    (vxlan(eth(0x0806, bytes(28), vlan=5)), "tunnel-arp"),
    (eth(0x0800, ipv4(17, struct.pack("!HHHH", 50000, 4789, 24, 0) + bytes(8) + ARP, options=bytes(8))),
     "tunnel-arp"),
    (vxlan(ARP, port=53), None),
    (gre(ARP), "tunnel-arp"),
    (gre(ARP, flags=0x8000 | 0x2000 | 0x1000), "tunnel-arp"),
    (gre(INNER_IP), "tunnel"),
    (gre(ARP, proto=0x0800), None),
    (eth(0x86DD, bytes(40)), None),
    (b"\x00" * 10, None),
])
def test_classify(frame: bytes, kind: str | None) -> None:
    assert classify(frame) == kind


def test_census_counts_each_kind() -> None:
    census = ArpCensus.of([ARP, ARP, vxlan(ARP), vxlan(INNER_IP), gre(ARP), INNER_IP])
    assert (census.underlay_host_arp, census.tenant_arp_in_tunnels, census.tunnel_frames) == (2, 2, 3)


def pcap(frames: list[bytes], magic: bytes = b"\xd4\xc3\xb2\xa1") -> bytes:
    order = "<" if magic[:2] in (b"\xd4\xc3", b"\x4d\x3c") else ">"
    out = magic + struct.pack(order + "HHiIII", 2, 4, 0, 0, 65535, 1)
    for frame in frames:
        out += struct.pack(order + "IIII", 1, 2, len(frame), len(frame)) + frame
    return out


@pytest.mark.parametrize("magic", [b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1"])
def test_read_pcap_either_byte_order_and_a_file_cut_short(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / "c.pcap"
    data = pcap([ARP, vxlan(ARP)], magic)
    path.write_bytes(data)
    assert read_pcap(path) == [ARP, vxlan(ARP)]
    path.write_bytes(data[:-5])  # the capture was stopped in the middle of the last frame
    assert read_pcap(path) == [ARP]
    path.write_bytes(b"not a pcap file at all!!")
    with pytest.raises(ValueError, match="not a pcap"):
        read_pcap(path)
