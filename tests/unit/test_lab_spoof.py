"""The spoofing probes' frame builders (pure): headers, checksums, and the counters that recognise them."""

from __future__ import annotations

import ipaddress
import struct

from kvnet.agent.security import link_local as eui64
from kvnet.lab import spoof
from kvnet.lab.spoof import Nic

ME = Nic("fa:16:3e:00:00:01", "10.0.0.1")
YOU = Nic("fa:16:3e:00:00:02", "10.0.0.2")


def ip_header(frame: bytes) -> bytes:
    return frame[14:34]


def test_ipv4_and_udp_checksums_verify() -> None:
    frame = spoof.forged_ip(ME, YOU, "10.0.0.99", tag=7)
    assert frame[:12] == spoof.mac_bytes(YOU.mac) + spoof.mac_bytes(ME.mac) and frame[12:14] == b"\x08\x00"
    assert spoof.checksum(ip_header(frame)) == 0
    assert ip_header(frame)[12:16] == ipaddress.IPv4Address("10.0.0.99").packed
    segment = frame[34:34 + struct.unpack("!H", frame[38:40])[0]]
    pseudo = ip_header(frame)[12:20] + struct.pack("!BBH", 0, 17, len(segment))
    assert spoof.checksum(pseudo + segment) == 0
    assert struct.unpack("!HH", segment[:4]) == (40007, spoof.PROBE_PORT)


def test_short_frames_are_padded_to_the_ethernet_minimum() -> None:
    assert len(spoof.arp_claim(ME, "10.0.0.2")) == 60


def test_forged_mac_keeps_the_ip_and_changes_the_source_mac() -> None:
    frame = spoof.forged_mac(ME, YOU, "02:00:00:00:00:66", tag=1)
    assert frame[6:12] == spoof.mac_bytes("02:00:00:00:00:66")
    assert ip_header(frame)[12:16] == ipaddress.IPv4Address(ME.ip).packed


def test_arp_claims_reply_request_and_gratuitous() -> None:
    reply = spoof.arp_claim(ME, "10.0.0.254", YOU)
    assert reply[:6] == spoof.mac_bytes(YOU.mac) and struct.unpack("!H", reply[20:22])[0] == spoof.ARP_REPLY
    assert reply[38:42] == ipaddress.IPv4Address(YOU.ip).packed
    garp = spoof.arp_claim(ME, "10.0.0.254")
    assert garp[:6] == b"\xff" * 6 and garp[28:32] == garp[38:42]  # sender IP = target IP
    request = spoof.arp_claim(ME, "10.0.0.254", YOU, op=spoof.ARP_REQUEST)
    assert struct.unpack("!H", request[20:22])[0] == spoof.ARP_REQUEST
    assert spoof.arp_claims([reply, garp, request], "10.0.0.254", ME.mac) == 3
    assert spoof.arp_claims([reply], "10.0.0.254", YOU.mac) == spoof.arp_claims([reply], "10.0.0.1", ME.mac) == 0


def test_dhcp_offer_is_a_server_answer_to_broadcast() -> None:
    frame = spoof.dhcp_offer(ME, "10.0.0.50", tag=3)
    assert frame[:6] == b"\xff" * 6 and spoof.checksum(ip_header(frame)) == 0
    assert struct.unpack("!HH", frame[34:38]) == (67, 68)
    bootp = frame[42:]
    assert bootp[0] == 2 and bootp[16:20] == ipaddress.IPv4Address("10.0.0.50").packed
    assert bootp[236:240] == b"\x63\x82\x53\x63" and bootp[240:243] == bytes([53, 1, 2])  # DHCPOFFER
    assert spoof.received([frame], 3) == 1


def test_router_advertisement_has_its_icmpv6_checksum_and_is_recognised() -> None:
    frame = spoof.router_advertisement(ME.mac)
    assert frame[:6] == spoof.mac_bytes(spoof.ALL_NODES) and frame[12:14] == b"\x86\xdd"
    packet = frame[14:]
    src, dst, message = packet[8:24], packet[24:40], packet[40:]
    assert ipaddress.IPv6Address(src) == ipaddress.IPv6Address(eui64(ME.mac)) == ipaddress.IPv6Address(
        spoof.link_local(ME.mac))
    pseudo = src + dst + struct.pack("!IxxxB", len(message), 58)
    assert spoof.checksum(pseudo + message) == 0 and message[0] == spoof.ROUTER_ADVERT
    assert spoof.router_adverts([frame], ME.mac) == 1 and spoof.router_adverts([frame], YOU.mac) == 0


def test_neighbour_advertisement_claims_its_target_for_the_sender() -> None:
    frame = spoof.neighbour_advertisement(ME.mac, spoof.link_local(YOU.mac))
    packet = frame[14:]
    src, dst, message = packet[8:24], packet[24:40], packet[40:]
    pseudo = src + dst + struct.pack("!IxxxB", len(message), 58)
    assert spoof.checksum(pseudo + message) == 0 and message[0] == spoof.NEIGHBOUR_ADVERT
    assert spoof.neighbour_adverts([frame], spoof.link_local(YOU.mac), ME.mac) == 1
    assert spoof.neighbour_adverts([frame], spoof.link_local(ME.mac), ME.mac) == 0


def test_tags_count_their_own_probes_only() -> None:
    frames = [spoof.forged_ip(ME, YOU, "10.0.0.9", tag=1), spoof.forged_ip(ME, YOU, "10.0.0.9", tag=12)]
    assert spoof.received(frames, 1) == spoof.received(frames, 12) == 1 and spoof.received(frames, 2) == 0
