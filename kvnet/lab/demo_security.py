"""`kvnet lab demo --scenario security`: port security and security groups, tried as a tenant would.

3 hosts (`--dataplane` linux or ovs). Project blue, network 10.30.0.0/24:

    a@h1 the attacker, in group `clients`     v@h2 the victim, in `default` and `web`
    w@h3 a server, in group `web`: ICMP from `clients`, UDP 7000 from anywhere, all egress
    c@h2 joins and leaves `clients` (the remote-group timing)

Project red has a network with the same CIDR, with ra@h1 and rw@h3 at a's and w's addresses.

Measured, by real frames and counters only:
- spoofing from a (forged source MAC, forged source IP: v's, another subnet's, red's twin of w's; ARP
  and gratuitous ARP claiming w's address and the gateway's; a DHCP server answer; an IPv6 router
  advertisement): what reached v (a capture in v: `spoofed_frames_delivered`) and whether v's ARP cache
  changed (`arp_caches_poisoned`). Every burst ends with a frame that is allowed; the capture stops
  once it arrived (frames from one sender on one path arrive in order), so "nothing arrived" is read
  when anything sent before it would have;
- groups: a UDP probe from a to a port w does not allow, counted in w (`sg_denied_delivered`); a's ping
  to w answered (`sg_allowed_ok`: w allows ICMP from `clients`; `stateful_reply_ok`: the answer reaches
  a, whose own group allows no ingress); a ping running while the ICMP rule is removed stops being
  answered within the convergence deadline (`removed_rule_cut_established`);
- blue's and red's flows with the same 5-tuple at once keep two conntrack entries, one per network's
  zone, on w's host (`tenants_conntrack_isolated`);
- c joining `clients` on another host -> its ping to w answered, p50/p99 (`remote_group_update_ms_*`).
"""

from __future__ import annotations

import re
import select
import subprocess
import time
from collections.abc import Callable
from typing import IO, Any

from kvnet.client import Client
from kvnet.lab import control, spoof
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, _percentile, boot_vm
from kvnet.lab.lab import Lab
from kvnet.lab.ovs import host_instance, lab_spec
from kvnet.lab.probe import UnderlayCapture, ping, ping_until
from kvnet.lab.traffic import wait_until
from kvnet.sys.cmd import in_netns, run

Progress = Callable[[str], None]
CIDR = "10.30.0.0/24"
GATEWAY = "10.30.0.1"
DEADLINE_S = 5.0
UDP_PORT = 7000
MEMBER_SAMPLES = 10
CONVERGE_S = 1.0  # a removed rule ends its connection within this (measured: ~50 ms)
WATCH_S = 3.0  # how long a removed rule's connection is watched for answers
REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from", re.MULTILINE)


def run_security_demo(name: str, hosts: int = 3, dataplane: str = "linux",
                      progress: Progress = lambda _: None) -> dict[str, Any]:
    lab = Lab(name)
    progress(f"lab {name}: {hosts} hosts ({dataplane}), API server, one agent per host")
    lab.up(lab_spec(name, hosts, dataplane), control_plane=True)
    try:
        with Client(control.server_url(lab)) as client:
            return {"scenario": "security", "dataplane": dataplane, **_scenario(lab, client, progress)}
    finally:
        progress(f"lab {name}: down")
        lab.down()


def _scenario(lab: Lab, client: Client, progress: Progress) -> dict[str, Any]:
    progress("project blue: groups clients, web; VMs a@h1, v@h2, w@h3; project red: ra@h1, rw@h3, same CIDR")
    _network(client, "blue")
    clients = client.create("securitygroups", {"name": "clients", "project_id": "blue",
                                               "rules": [{"direction": "egress"}]})
    web = client.create("securitygroups", {"name": "web", "project_id": "blue", "rules": [
        {"direction": "egress"}, {"direction": "ingress", "protocol": "udp", "port_range_min": UDP_PORT}]})
    icmp_rule = client.add_rule(web["id"], {"direction": "ingress", "protocol": "icmp",
                                            "remote_group_id": clients["id"]})
    vms = {vm.name: vm for vm in (DemoVM("a", "h1", "blue", "10.30.0.11"), DemoVM("v", "h2", "blue", "10.30.0.12"),
                                  DemoVM("w", "h3", "blue", "10.30.0.13"), DemoVM("c", "h2", "blue", "10.30.0.14"))}
    groups = {"a": [clients["id"]], "v": [client.find("securitygroups", "default", project="blue")["id"], web["id"]],
              "w": [web["id"]], "c": []}
    records = {name: boot_vm(lab, client, vm, **({"security_group_ids": groups[name]} if name in groups else {}))
               for name, vm in vms.items()}
    _network(client, "red")
    red_web = client.create("securitygroups", {"name": "web", "project_id": "red", "rules": [
        {"direction": "egress"}, {"direction": "ingress", "protocol": "udp", "port_range_min": UDP_PORT}]})
    for vm in (DemoVM("ra", "h1", "red", "10.30.0.11"), DemoVM("rw", "h3", "red", "10.30.0.13")):
        boot_vm(lab, client, vm, **({"security_group_ids": [red_web["id"]]} if vm.name == "rw" else {}))
    nic = {name: spoof.Nic(rec["mac"], vms[name].ip) for name, rec in records.items()}
    out: dict[str, Any] = {}
    progress("spoofing from a: forged MAC and IPs, ARP claims, DHCP answer, router and neighbour advertisements")
    out.update(_spoofing(lab, nic))
    progress("security groups: denied, allowed, stateful, a removed rule under a running ping")
    out.update(_groups(lab, client, web["id"], icmp_rule))
    progress("blue and red: the same 5-tuple at once, two conntrack zones on h3")
    out["tenants_conntrack_isolated"] = _conntrack_isolated(lab, client)
    progress(f"remote group: c joins clients on h2 -> allowed by w on h3 ({MEMBER_SAMPLES} samples)")
    client.add_rule(web["id"], {"direction": "ingress", "protocol": "icmp", "remote_group_id": clients["id"]})
    out.update(_remote_group_timing(lab, client, clients["id"]))
    return out


def _network(client: Client, project: str) -> None:
    net = client.create("networks", {"name": project, "project_id": project})
    client.create("subnets", {"name": f"{project}-sub", "network_id": net["id"], "cidr": CIDR, "project_id": project,
                              "gateway_ip": GATEWAY})


def _spoofing(lab: Lab, nic: dict[str, spoof.Nic]) -> dict[str, Any]:
    a, v, w = nic["a"], nic["v"], nic["w"]
    ping(lab, "v", w.ip, timeout=1)  # unanswered (w takes ICMP from `clients` only), but v now caches w's MAC
    cached = spoof.neighbour(n.vm_ns(lab.name, "v"), w.ip)
    forged = [spoof.forged_mac(a, v, "fa:16:3e:66:66:66", 1), spoof.forged_ip(a, v, v.ip, 2),
              spoof.forged_ip(a, v, "10.99.0.5", 3), spoof.forged_ip(a, v, w.ip, 4),  # red's rw has it too
              spoof.dhcp_offer(a, "10.30.0.200", 5)]
    claims = [spoof.arp_claim(a, w.ip, v), spoof.arp_claim(a, w.ip), spoof.arp_claim(a, GATEWAY),
              spoof.arp_claim(a, v.ip)]
    adverts = [spoof.router_advertisement(a.mac), spoof.neighbour_advertisement(a.mac, spoof.link_local(v.mac))]
    frames = _burst(lab, "a", "v", [*forged, *claims, *adverts] * 2, _udp_to(a, v, UDP_PORT, 99), 99)
    delivered = sum(spoof.received(frames, tag) for tag in range(1, 6))
    delivered += spoof.arp_claims(frames, w.ip, a.mac) + spoof.arp_claims(frames, GATEWAY, a.mac)
    delivered += spoof.arp_claims(frames, v.ip, a.mac) + spoof.router_adverts(frames, a.mac)
    delivered += spoof.neighbour_adverts(frames, spoof.link_local(v.mac), a.mac)
    poisoned = int(spoof.neighbour(n.vm_ns(lab.name, "v"), w.ip) not in (None, cached))
    return {"spoof_attempts": 2 * (len(forged) + len(claims) + len(adverts)), "spoofed_frames_delivered": delivered,
            "arp_caches_poisoned": poisoned}


def _groups(lab: Lab, client: Client, web_id: str, icmp_rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    records = lab.vms()
    a = spoof.Nic(records["a"]["mac"], "10.30.0.11")
    w = spoof.Nic(records["w"]["mac"], "10.30.0.13")
    frames = _burst(lab, "a", "w", [spoof.udp_probe(a.mac, a.ip, w, 11)] * 3,  # to port 9: no rule
                    _udp_to(a, w, UDP_PORT, 12), 12)
    out["sg_denied_delivered"] = spoof.received(frames, 11)
    allowed_udp = spoof.received(frames, 12) > 0
    answered = ping_until(lab, "a", w.ip, DEADLINE_S) is not None
    out["sg_allowed_ok"] = allowed_udp and answered
    # a's own group allows no ingress at all: the answers pass as replies of a's connection
    out["stateful_reply_ok"] = answered and not ping(lab, "w", a.ip, timeout=1)
    out["removed_rule_cut_established"] = _removed_rule_cuts(lab, client, web_id, icmp_rule["id"], w.ip)
    return out


def _burst(lab: Lab, src: str, dst: str, frames: list[bytes], last: bytes, last_tag: int) -> list[bytes]:
    """Send `frames` then `last` (one that must arrive) from `src`; capture in `dst` until `last` is in
    again: what arrived of the others had its chance. `last` is first sent until it arrives, so the path
    is warm (OVS drops what it sends a tunnel peer it has not resolved yet). A `last` that never comes
    makes every count meaningless, so that is an error, not a zero."""
    ns = n.vm_ns(lab.name, src)
    with UnderlayCapture(lab, "", netns=n.vm_ns(lab.name, dst), interface=n.VM_IF, pcap=True) as capture:
        _send_until(ns, [last], lambda: spoof.received(capture.frames(), last_tag) > 0, src, dst)
        seen = spoof.received(capture.frames(), last_tag)
        spoof.send(ns, frames)
        _send_until(ns, [last], lambda: spoof.received(capture.frames(), last_tag) > seen, src, dst)
    return capture.frames()


def _send_until(ns: str, frames: list[bytes], arrived: Callable[[], bool], src: str, dst: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while True:
        spoof.send(ns, frames)
        if wait_until(arrived, 0.5, interval_s=0.02) is not None:
            return
        if time.monotonic() > end:
            raise TimeoutError(f"the allowed frame from {src} never reached {dst}: the capture proves nothing")


def _udp_to(sender: spoof.Nic, to: spoof.Nic, port: int, tag: int) -> bytes:
    return spoof.ethernet(to.mac, sender.mac, spoof.ETH_IPV4,
                          spoof.udp4(sender.ip, to.ip, 40000 + tag, port, spoof.payload(tag)))


def _removed_rule_cuts(lab: Lab, client: Client, web_id: str, rule_id: str, target: str) -> bool:
    """A ping from a to w runs (one ICMP id: one conntrack entry, established); the rule allowing it is
    removed; after the deadline no answer may come any more."""
    argv = in_netns(["ping", "-n", "-D", "-i", "0.05", "-W", "1", target], n.vm_ns(lab.name, "a"))
    pinger = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert pinger.stdout is not None
        first = _first_reply(pinger.stdout)  # the connection is established
        removed_at = time.time()
        client.remove_rule(web_id, rule_id)
        window_end = time.monotonic() + WATCH_S  # the measurement window, not a wait for anything
        while time.monotonic() < window_end and pinger.poll() is None:
            time.sleep(0.05)
    finally:
        pinger.terminate()  # our own child, by its handle
        output, _ = pinger.communicate(timeout=10)
    stamps = [float(s) for s in REPLY.findall(output)]
    after = [s for s in stamps if s > removed_at + CONVERGE_S]
    return first and not after


def _first_reply(stream: IO[str]) -> bool:
    """Read the ping's output until its first answer (or the deadline)."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        ready, _, _ = select.select([stream], [], [], max(0.0, end - time.monotonic()))
        if ready and REPLY.search(stream.readline() or ""):
            return True
    return False


def _conntrack_isolated(lab: Lab, client: Client) -> bool:
    """a -> w and ra -> rw: UDP 40013 -> 7000 from 10.30.0.11 to 10.30.0.13 both; h3 must keep two
    entries of that tuple, in two zones."""
    records = lab.vms()
    for src, dst in (("a", "w"), ("ra", "rw")):
        sender = spoof.Nic(records[src]["mac"], "10.30.0.11")
        receiver = spoof.Nic(records[dst]["mac"], "10.30.0.13")
        spoof.send(n.vm_ns(lab.name, src), [_udp_to(sender, receiver, UDP_PORT, 13)] * 3)
    end = time.monotonic() + DEADLINE_S
    while len(_udp_zones(lab, "h3")) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    return len(_udp_zones(lab, "h3")) == 2


def _udp_zones(lab: Lab, host: str) -> set[str]:
    """The conntrack zones holding 10.30.0.11:40013 -> 10.30.0.13:7000 on `host`."""
    if lab.hosts()[host].get("dataplane") == "ovs":
        text = host_instance(lab, host).appctl("ovs-vswitchd", "dpctl/dump-conntrack")
        lines = [line for line in text.splitlines()
                 if "src=10.30.0.11" in line and "dst=10.30.0.13" in line and "dport=7000" in line]
        return {m.group(1) for line in lines if (m := re.search(r"zone=(\d+)", line))}
    text = run(["conntrack", "-L", "-p", "udp", "--dport", str(UDP_PORT)], netns=lab.host_ns(host),
               check=False).stdout
    return {m.group(1) for line in text.splitlines()
            if "src=10.30.0.11" in line and (m := re.search(r"zone=(\d+)", line))}


def _remote_group_timing(lab: Lab, client: Client, clients_id: str) -> dict[str, Any]:
    port = client.find("ports", "c", project="blue")["id"]
    samples: list[float] = []
    for _ in range(MEMBER_SAMPLES):
        end = time.monotonic() + DEADLINE_S
        while ping(lab, "c", "10.30.0.13", timeout=0.2):  # not a member: not answered (wait for the leave)
            if time.monotonic() > end:
                break
        started = time.monotonic()
        client.update("ports", port, {"security_group_ids": [clients_id]})
        if ping_until(lab, "c", "10.30.0.13", DEADLINE_S) is not None:
            samples.append((time.monotonic() - started) * 1000)
        client.update("ports", port, {"security_group_ids": []})
    ordered = sorted(samples)
    return {"remote_group_update_ms_p50": round(_percentile(ordered, 50), 1) if ordered else None,
            "remote_group_update_ms_p99": round(_percentile(ordered, 99), 1) if ordered else None,
            "remote_group_update_samples": len(ordered)}


KEYS_ZERO = ("spoofed_frames_delivered", "arp_caches_poisoned", "sg_denied_delivered")
KEYS_TRUE = ("sg_allowed_ok", "stateful_reply_ok", "removed_rule_cut_established", "tenants_conntrack_isolated")


def demo_ok(data: dict[str, Any]) -> bool:
    return all(data[k] == 0 for k in KEYS_ZERO) and all(data[k] is True for k in KEYS_TRUE) \
        and data["remote_group_update_samples"] == MEMBER_SAMPLES


def render_table(data: dict[str, Any]) -> str:
    keys = ("spoof_attempts", *KEYS_ZERO, *KEYS_TRUE, "remote_group_update_ms_p50", "remote_group_update_ms_p99")
    return "\n".join([f"scenario: security ({data['dataplane']})"] + [f"{k + ':':32} {data.get(k)}" for k in keys])
