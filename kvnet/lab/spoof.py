"""Spoofing probes from lab VMs: frames a tenant could forge, built here and sent from the VM's namespace
through a raw AF_PACKET socket (no scapy: `struct` and the checksums below), and what the receiving
side can count.

    frame = forged_ip(attacker, victim, "10.0.0.99", tag=1)
    send(vm_ns, [frame])
    received(capture.frames(), tag=1)             # 0 when port security held
    neighbour(victim_ns, "10.0.0.1")              # the victim's ARP cache entry, to see it unchanged

Every UDP probe carries `MARKER` and a tag in its payload, so a receiver counts exactly the probes of
one case (`received`); ARP and router advertisements carry no payload and are recognised by their
fields (`arp_claims`, `router_adverts`, `neighbour_adverts`). Receivers: `kvnet.lab.probe.UnderlayCapture(lab, "",
netns=<vm ns>, interface="eth0", pcap=True)` in the victim, or the victim's neighbour cache.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kvnet.sys.cmd import run, run_json

MARKER = b"kvnet-spoof:"
BROADCAST = "ff:ff:ff:ff:ff:ff"
ALL_NODES = "33:33:00:00:00:01"  # the Ethernet address of ff02::1
ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
UDP, ICMPV6 = 17, 58
ARP_REQUEST, ARP_REPLY = 1, 2
ROUTER_ADVERT, NEIGHBOUR_ADVERT = 134, 136
PROBE_PORT = 9  # discard: nothing answers, nothing minds
# The sender, run with the VM namespace's own interpreter: one socket, the frames as hex arguments.
SENDER = ("import socket, sys\n"
          "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
          "s.bind((sys.argv[1], 0))\n"
          "for frame in sys.argv[2:]:\n"
          "    s.send(bytes.fromhex(frame))\n")


@dataclass(frozen=True)
class Nic:
    """A VM's interface as a frame sees it."""

    mac: str
    ip: str


def mac_bytes(mac: str) -> bytes:
    return bytes(int(octet, 16) for octet in mac.split(":"))


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    frame = mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload
    return frame.ljust(60, b"\0")  # the minimum frame (without FCS)


def arp(op: int, sender: Nic, target: Nic) -> bytes:
    """An ARP payload for IPv4 over Ethernet."""
    return (struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, op)
            + mac_bytes(sender.mac) + ipaddress.IPv4Address(sender.ip).packed
            + mac_bytes(target.mac) + ipaddress.IPv4Address(target.ip).packed)


def ipv4(src: str, dst: str, protocol: int, payload: bytes, ttl: int = 64) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, ttl, protocol, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 packet carrying one UDP datagram, both checksums right (the receiver's stack accepts it)."""
    length = 8 + len(payload)
    pseudo = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed + struct.pack("!BBH", 0, UDP, length)
    segment = struct.pack("!HHHH", sport, dport, length, 0) + payload
    return ipv4(src, dst, UDP, segment[:6] + struct.pack("!H", checksum(pseudo + segment) or 0xFFFF) + segment[8:])


def ipv6(src: str, dst: str, next_header: int, payload: bytes, hop_limit: int = 255) -> bytes:
    return (struct.pack("!IHBB", 6 << 28, len(payload), next_header, hop_limit)
            + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + payload)


def icmpv6(src: str, dst: str, icmp_type: int, code: int, body: bytes) -> bytes:
    """An IPv6 packet carrying one ICMPv6 message with its checksum (over the pseudo header)."""
    message = struct.pack("!BBH", icmp_type, code, 0) + body
    pseudo = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
              + struct.pack("!IxxxB", len(message), ICMPV6))
    return ipv6(src, dst, ICMPV6, message[:2] + struct.pack("!H", checksum(pseudo + message)) + message[4:])


def link_local(mac: str) -> str:
    """The EUI-64 link-local address of `mac`."""
    octets = bytearray(mac_bytes(mac))
    octets[0] ^= 0x02
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + bytes(octets[:3]) + b"\xff\xfe" + bytes(octets[3:])))


def payload(tag: int) -> bytes:
    return MARKER + f"{tag};".encode()


# -- the probes: one frame each ----------------------------------------------------------------------------
def udp_probe(src_mac: str, src_ip: str, to: Nic, tag: int, port: int = PROBE_PORT) -> bytes:
    """A tagged UDP datagram to `to`'s `port`, from whatever source the caller gives."""
    return ethernet(to.mac, src_mac, ETH_IPV4, udp4(src_ip, to.ip, 40000 + tag % 20000, port, payload(tag)))


def forged_mac(sender: Nic, to: Nic, mac: str, tag: int) -> bytes:
    """The sender's own IP, another source MAC."""
    return udp_probe(mac, sender.ip, to, tag)


def forged_ip(sender: Nic, to: Nic, ip: str, tag: int) -> bytes:
    """The sender's own MAC, another source IP (same subnet, another subnet, another tenant's...)."""
    return udp_probe(sender.mac, ip, to, tag)


def arp_claim(sender: Nic, claimed_ip: str, to: Nic | None = None, op: int = ARP_REPLY) -> bytes:
    """ARP saying `claimed_ip` is at the sender's MAC: a reply (or request) unicast to `to`, or a
    gratuitous ARP (broadcast, target = sender = the claimed address) when `to` is None."""
    me = Nic(sender.mac, claimed_ip)
    if to is None:
        return ethernet(BROADCAST, sender.mac, ETH_ARP, arp(op, me, Nic("00:00:00:00:00:00", claimed_ip)))
    return ethernet(to.mac, sender.mac, ETH_ARP, arp(op, me, to))


def dhcp_offer(sender: Nic, offered_ip: str, tag: int) -> bytes:
    """A DHCP server's answer (UDP 67 -> 68, broadcast), offering `offered_ip` with the sender as router."""
    bootp = (struct.pack("!BBBBIHH", 2, 1, 6, 0, 0x4B560000 + tag % 0x10000, 0, 0x8000) + bytes(4)
             + ipaddress.IPv4Address(offered_ip).packed + ipaddress.IPv4Address(sender.ip).packed + bytes(4)
             + bytes(16) + bytes(64) + bytes(128) + b"\x63\x82\x53\x63"
             + bytes([53, 1, 2, 54, 4]) + ipaddress.IPv4Address(sender.ip).packed
             + bytes([3, 4]) + ipaddress.IPv4Address(sender.ip).packed + bytes([255]) + payload(tag))
    packet = udp4(sender.ip, "255.255.255.255", 67, 68, bootp)
    return ethernet(BROADCAST, sender.mac, ETH_IPV4, packet)


def router_advertisement(sender_mac: str) -> bytes:
    """An IPv6 router advertisement from the sender's link-local address to all nodes: "I am your
    default router" (lifetime 1800 s) with its MAC as the source link-layer option."""
    body = struct.pack("!BBHII", 64, 0, 1800, 0, 0) + bytes([1, 1]) + mac_bytes(sender_mac)
    return ethernet(ALL_NODES, sender_mac, ETH_IPV6, icmpv6(link_local(sender_mac), "ff02::1", ROUTER_ADVERT, 0, body))


def neighbour_advertisement(sender_mac: str, target_ip: str) -> bytes:
    """An unsolicited IPv6 neighbour advertisement from the sender's own link-local address to all
    nodes, overriding: "`target_ip` is at my MAC" -- the IPv6 form of a gratuitous ARP reply."""
    body = (struct.pack("!I", 0x20000000) + ipaddress.IPv6Address(target_ip).packed  # O(verride) flag
            + bytes([2, 1]) + mac_bytes(sender_mac))  # the target link-layer address option
    return ethernet(ALL_NODES, sender_mac, ETH_IPV6,
                    icmpv6(link_local(sender_mac), "ff02::1", NEIGHBOUR_ADVERT, 0, body))


# -- sending and counting ----------------------------------------------------------------------------------
def send(netns: str, frames: Sequence[bytes], interface: str = "eth0") -> None:
    """Send `frames` as they are from `interface` in `netns` (a lab VM), in order."""
    run([sys.executable, "-c", SENDER, interface, *(f.hex() for f in frames)], netns=netns)


def received(frames: Iterable[bytes], tag: int) -> int:
    """How many of the captured frames are the UDP probe (or DHCP answer) tagged `tag`."""
    wanted = payload(tag)
    return sum(1 for f in frames if wanted in f)


def arp_claims(frames: Iterable[bytes], ip: str, mac: str) -> int:
    """How many captured ARP frames say `ip` is at `mac`."""
    claim = mac_bytes(mac) + ipaddress.IPv4Address(ip).packed
    return sum(1 for f in frames if f[12:14] == struct.pack("!H", ETH_ARP) and f[22:32] == claim)


def router_adverts(frames: Iterable[bytes], mac: str) -> int:
    """How many captured frames are router advertisements from `mac`."""
    return sum(1 for f in frames if f[6:12] == mac_bytes(mac) and f[12:14] == struct.pack("!H", ETH_IPV6)
               and f[20] == ICMPV6 and f[54] == ROUTER_ADVERT)


def neighbour_adverts(frames: Iterable[bytes], target_ip: str, mac: str) -> int:
    """How many captured frames advertise `target_ip` at `mac`."""
    claim = ipaddress.IPv6Address(target_ip).packed + bytes([2, 1]) + mac_bytes(mac)
    return sum(1 for f in frames if f[12:14] == struct.pack("!H", ETH_IPV6) and f[20] == ICMPV6
               and f[54] == NEIGHBOUR_ADVERT and f[62:86] == claim)


def neighbour(netns: str, ip: str, interface: str = "eth0") -> str | None:
    """The MAC `netns` has cached for `ip` (None: no entry, or an entry being resolved)."""
    rows = run_json(["ip", "-j", "neigh", "show", ip, "dev", interface], netns=netns)
    return next((row["lladdr"].lower() for row in rows if row.get("lladdr")), None)
