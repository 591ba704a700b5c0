"""The spoofing probes on a bare veth between two namespaces (no kvnet in between): the kernel accepts
what they build, and a forged ARP claim poisons a neighbour cache -- so when the security tests see
nothing arrive and no cache change, it is the filter's doing, not a broken probe."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from kvnet.lab import spoof
from kvnet.lab.spoof import Nic
from kvnet.sys import netns
from kvnet.sys.cmd import in_netns, run

pytestmark = pytest.mark.root
A = Nic("fa:16:3e:00:00:0a", "10.0.0.1")
B = Nic("fa:16:3e:00:00:0b", "10.0.0.2")
LISTENER = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0', int(sys.argv[1])))\n"
            "s.settimeout(5)\n"
            "print('ready', flush=True)\n"
            "data, peer = s.recvfrom(2048)\n"
            "print(peer[0], data.decode(errors='replace'), flush=True)\n")


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[str, str]]:
    prefix = f"kvtS{secrets.token_hex(2)}"
    a, b = f"{prefix}-a", f"{prefix}-b"
    try:
        netns.add(a)
        netns.add(b)
        netns.add_veth("eth0", a, "eth0", b)
        for ns, nic in ((a, A), (b, B)):
            run(["ip", "-n", ns, "link", "set", "eth0", "address", nic.mac])
            run(["ip", "-n", ns, "addr", "add", f"{nic.ip}/24", "dev", "eth0"])
        yield a, b
    finally:
        netns.delete_with_prefix(prefix)


def test_a_forged_udp_probe_is_accepted_by_the_receivers_stack(pair: tuple[str, str]) -> None:
    a, b = pair
    listener = subprocess.Popen(in_netns([sys.executable, "-c", LISTENER, str(spoof.PROBE_PORT)], b),
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        spoof.send(a, [spoof.forged_ip(A, B, "10.0.0.99", tag=5)])
        out, _ = listener.communicate(timeout=10)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert out.split() == ["10.0.0.99", spoof.payload(5).decode()]  # both checksums held


def test_an_arp_claim_rewrites_an_unprotected_neighbour_cache(pair: tuple[str, str]) -> None:
    a, b = pair
    run(["sysctl", "-qw", "net.ipv4.neigh.eth0.locktime=0"], netns=b)  # no 1 s grace for the old entry
    run(["ip", "-n", b, "neigh", "replace", "10.0.0.77", "lladdr", "02:00:00:00:00:77", "dev", "eth0", "nud", "stale"])
    assert spoof.neighbour(b, "10.0.0.77") == "02:00:00:00:00:77"
    spoof.send(a, [spoof.arp_claim(A, "10.0.0.77", B)])
    deadline = time.monotonic() + 5
    while spoof.neighbour(b, "10.0.0.77") != A.mac:
        assert time.monotonic() < deadline, spoof.neighbour(b, "10.0.0.77")
        time.sleep(0.05)
