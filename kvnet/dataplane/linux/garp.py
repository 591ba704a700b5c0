"""Gratuitous ARP from inside a namespace: tells the external network where a floating IP lives now.

A floating IP that moves (another host's `fg-` leg in DVR, another router's gateway) keeps a stale
entry in the external routers' ARP caches until it times out; Neutron sends gratuitous ARPs, so does
kvnet. The frame is sent from a short-lived thread that joined the namespace (setns applies to the
calling thread only), so no process is spawned.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
ETH_P_ARP = 0x0806
NETNS_DIR = "/run/netns"


def garp_frame(mac: str, ip: str) -> bytes:
    """A broadcast ARP request with sender = target = `ip` (what `arping -U` sends)."""
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = ipaddress.IPv4Address(ip).packed
    eth = b"\xff" * 6 + hw + ETH_P_ARP.to_bytes(2, "big")
    arp = bytes.fromhex("0001080006040001") + hw + addr + b"\x00" * 6 + addr
    return eth + arp


def announce(netns: str, entries: list[tuple[str, str, str]], count: int = 2) -> list[str]:
    """Send gratuitous ARPs for (dev, ip, mac) inside `netns`; returns errors (empty on success)."""
    errors: list[str] = []

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                errors.append(f"setns {netns}: {os.strerror(ctypes.get_errno())}")
                return
        finally:
            os.close(fd)
        for dev, ip, mac in entries:
            try:
                with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
                    sock.bind((dev, 0))
                    for _ in range(count):
                        sock.send(garp_frame(mac, ip))
            except OSError as exc:
                errors.append(f"gratuitous ARP {ip} on {dev} in {netns}: {exc}")

    thread = threading.Thread(target=work, name=f"garp-{netns}", daemon=True)
    thread.start()
    thread.join(timeout=5)
    return errors
