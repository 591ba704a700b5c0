"""`Lab.up` builds the namespaces and links it promises; the underlay and the external bridge carry frames."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from kvnet.lab import names as n
from kvnet.lab.lab import Lab, LabError
from kvnet.lab.probe import UnderlayCapture, arp_capture, host_exec
from kvnet.lab.spec import default_spec
from kvnet.lab.testing import running_lab
from kvnet.sys import netns
from kvnet.sys.cmd import run, run_json

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(hosts=3) as lab:
        yield lab


def link(ns: str, dev: str) -> dict:
    return run_json(["ip", "-j", "-d", "addr", "show", "dev", dev], netns=ns)[0]


def test_up_builds_every_namespace(lab: Lab) -> None:
    st = lab.status()
    assert st["up"] is True
    assert set(st["namespaces"]) == {f"{lab.name}-{x}" for x in ("ul", "ext", "h1", "h2", "h3")}
    assert netns.list_with_prefix(n.prefix(lab.name)) == sorted(st["namespaces"])
    assert st["stray_namespaces"] == [] and st["processes"] == {} and st["vms"] == {}
    assert st["hosts"]["h1"]["roles"] == ["network", "compute"]
    assert st["hosts"]["h2"]["roles"] == ["compute"]


def test_host_wiring(lab: Lab) -> None:
    ul = n.ul_ns(lab.name)
    for i, host in enumerate(("h1", "h2", "h3"), start=1):
        hns = n.host_ns(lab.name, host)
        ul0 = link(hns, "ul0")
        assert ul0["mtu"] == 1550 and ul0["operstate"] == "UP"
        assert [(a["local"], a["prefixlen"]) for a in ul0["addr_info"] if a["family"] == "inet"] == \
            [(f"192.0.2.{i}", 24)]
        ex0 = link(hns, "ex0")
        assert ex0["operstate"] == "UP"
        assert [a for a in ex0["addr_info"] if a["family"] == "inet"] == []
        assert host_exec(lab, host, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
        assert host_exec(lab, host, ["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]).stdout.strip() == "1"
        port = link(ul, f"{host}-ul")
        assert port["master"] == "br-ul" and port["mtu"] == 1550
        assert link(n.ext_ns(lab.name), f"{host}-ex")["master"] == "br-ext"
    assert link(ul, "br-ul")["mtu"] == 1550


def test_hosts_ping_each_other_over_the_underlay(lab: Lab) -> None:
    failures = [(src, dst) for src in ("h1", "h2", "h3") for dst in (1, 2, 3)
                if host_exec(lab, src, ["ping", "-c1", "-W1", f"192.0.2.{dst}"], check=False).returncode]
    assert failures == []


def test_underlay_has_vxlan_headroom(lab: Lab) -> None:
    """1550-byte IP packets cross the underlay unfragmented; 1551 bytes do not fit."""
    ok = host_exec(lab, "h1", ["ping", "-c1", "-W1", "-M", "do", "-s", "1522", "192.0.2.2"], check=False)
    too_big = host_exec(lab, "h1", ["ping", "-c1", "-W0.2", "-M", "do", "-s", "1523", "192.0.2.2"], check=False)
    assert ok.returncode == 0
    assert too_big.returncode != 0


def test_ex0_reaches_the_external_bridge_at_l2(lab: Lab) -> None:
    """ex0 has no IP (it is physnet-ext); put one on for this test only to prove frames reach br-ext."""
    hns = n.host_ns(lab.name, "h2")
    run(["ip", "-n", hns, "addr", "add", "203.0.113.202/24", "dev", "ex0"])
    try:
        assert host_exec(lab, "h2", ["ping", "-c1", "-W1", "203.0.113.1"], check=False).returncode == 0
    finally:
        run(["ip", "-n", hns, "addr", "del", "203.0.113.202/24", "dev", "ex0"])
    assert [a for a in link(hns, "ex0")["addr_info"] if a["family"] == "inet"] == []


def test_capture_counts_arp_broadcasts(lab: Lab) -> None:
    run(["ip", "-n", n.host_ns(lab.name, "h1"), "neigh", "flush", "dev", "ul0"])
    with UnderlayCapture(lab, "arp and ether broadcast") as cap:
        assert cap.count == 0
        for dst in ("192.0.2.2", "192.0.2.3"):
            host_exec(lab, "h1", ["ping", "-c1", "-W1", dst])
        assert cap.wait_for(2, deadline_s=5)
    assert cap.count >= 2
    text = "\n".join(cap.lines())
    assert "Request who-has 192.0.2.2 tell 192.0.2.1" in text
    assert "Request who-has 192.0.2.3 tell 192.0.2.1" in text
    assert all("ff:ff:ff:ff:ff:ff" in line for line in cap.lines())
    assert cap.name not in lab.procs.records()  # stopped and forgotten


def test_capture_sees_only_matching_frames(lab: Lab) -> None:
    with UnderlayCapture(lab, "udp port 4789") as vxlan, UnderlayCapture(lab, "icmp") as icmp:
        host_exec(lab, "h2", ["ping", "-c2", "-i0.05", "-W1", "192.0.2.3"])
        assert icmp.wait_for(4, deadline_s=5)  # 2 requests + 2 replies
    assert vxlan.count == 0


def test_up_refuses_a_lab_that_is_already_up(lab: Lab) -> None:
    with pytest.raises(LabError, match="already up"):
        lab.up(default_spec(lab.name, 1))
    assert lab.status()["up"] is True


def test_status_is_json_serialisable(lab: Lab) -> None:
    assert json.loads(json.dumps(lab.status()))["name"] == lab.name


def test_arp_census_tells_tenant_arp_in_a_tunnel_from_the_hosts_own(lab: Lab) -> None:
    """A hand-built VXLAN between h1 and h2 without any ARP responder: an ARP for an address behind
    it crosses the underlay inside the tunnel, and resolving h2's tunnel IP is the hosts' own ARP."""
    ends = {"h1": "10.77.0.1/24", "h2": "10.77.0.2/24"}
    for host, peer in (("h1", "192.0.2.2"), ("h2", "192.0.2.1")):
        host_exec(lab, host, ["ip", "link", "add", "kvtest-vx", "type", "vxlan", "id", "77", "dstport", "4789",
                              "remote", peer, "dev", "ul0"])
        host_exec(lab, host, ["ip", "addr", "add", ends[host], "dev", "kvtest-vx"])
        host_exec(lab, host, ["ip", "link", "set", "kvtest-vx", "up"])
    try:
        run(["ip", "-n", n.host_ns(lab.name, "h1"), "neigh", "flush", "dev", "ul0"])
        with arp_capture(lab) as cap:
            assert host_exec(lab, "h1", ["ping", "-c1", "-W2", "10.77.0.2"], check=False).returncode == 0
        census = cap.arp_census()
        assert census.tenant_arp_in_tunnels >= 2  # the request and the reply, inside VXLAN
        assert census.underlay_host_arp >= 1  # h1 resolving 192.0.2.2
        assert census.tunnel_frames > census.tenant_arp_in_tunnels  # the pings themselves
    finally:
        for host in ends:
            host_exec(lab, host, ["ip", "link", "del", "kvtest-vx"], check=False)
