"""apply_routers(changes, host_netns) -> failures: write RouterChanges to the kernel, batched per namespace.

Order: new namespaces (with their sysctls) -> veth pairs, created from the host namespace with the
router end moved straight into its namespace -> one `ip -batch` per namespace (legs, addresses, rules,
routes, neighbours) -> one nft transaction per namespace -> namespaces no longer planned. After the L2
pass has plugged the legs: gratuitous ARP for the floating IPs just added (`announce_fips`).
Every refused object comes back as a `Failure` for the ports its namespace serves (`serves`); the next
reconcile re-observes and retries. A namespace whose creation failed half-way is removed again at once
(nothing of it is live yet), so the next pass creates it whole -- with its sysctls.
"""

from __future__ import annotations

from collections.abc import Mapping

from kvnet.dataplane.linux.context import Announce
from kvnet.dataplane.linux.observe import tool
from kvnet.dataplane.linux.router_diff import RouterChanges
from kvnet.dataplane.result import Failure
from kvnet.sys.batch import run_batch
from kvnet.sys.cmd import CommandError, in_netns
from kvnet.sys.runner import Runner, checked

# Forwarding on; reverse-path filter off (the SNAT host answers a DVR host's traffic on another leg
# than it arrived on); no ICMP redirects (hairpin leaves through the leg it came in on); ARP answered
# only for the leg's own addresses (a tenant subnet never learns a floating IP's leg).
ROUTER_SYSCTLS = ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                  "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
                  "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.default.arp_ignore=1")
# Router namespaces never use IPv6 (router solicitations would flood otherwise).
NO_IPV6 = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")


def create_namespace(runner: Runner, name: str) -> None:
    checked(runner, ["ip", "netns", "add", name])
    try:
        checked(runner, ["ip", "-n", name, "link", "set", "lo", "up"])
        checked(runner, in_netns(["sysctl", "-q", "-w", *NO_IPV6, *ROUTER_SYSCTLS], name))
    except CommandError:
        runner.run(["ip", "netns", "del", name])  # half-made: gone again, made whole next pass
        raise


def apply_routers(changes: RouterChanges, host_netns: str | None, runner: Runner,
                  serves: Mapping[str, tuple[str, ...]]) -> list[Failure]:
    failures: list[Failure] = []
    skipped: set[str] = set()
    for name in changes.create_ns:
        try:
            create_namespace(runner, name)
        except CommandError as exc:
            failures.append(Failure("router_ns", name, exc.stderr.strip() or str(exc), serves.get(name, ())))
            skipped.add(name)  # its legs, addresses and NAT would only fail after it
    veths = [(ns, leg) for ns, leg in changes.veth_add if ns not in skipped]
    lines = [f"link add {leg.device} mtu {leg.mtu} type veth peer name {leg.name} address {leg.mac} "
             f"mtu {leg.mtu} netns {ns}" for ns, leg in veths]
    for index, message in run_batch(runner, tool("ip", host_netns), lines).items() if lines else ():
        ns, leg = veths[index]
        failures.append(Failure("leg", f"{leg.name} in {ns}", message, serves.get(ns, ())))
    for name, ns_lines in changes.ns_lines.items():
        if name in skipped:
            continue
        objects = changes.ns_objects.get(name, [])
        for index, message in sorted(run_batch(runner, ["ip", "-n", name], ns_lines).items()):
            kind, key = objects[index] if index < len(objects) else ("router_ns", name)
            failures.append(Failure(kind, f"{key} in {name}", message, serves.get(name, ())))
    for name, script in changes.nft.items():
        if name in skipped:
            continue
        proc = runner.run(in_netns(["nft", "-f", "-"], name), input=script)
        if proc.returncode != 0:
            failures.append(Failure("nat", f"ip kvnet in {name}", proc.stderr.strip(), serves.get(name, ())))
    for name in changes.delete_ns:
        if changes.delete_legs.get(name):  # their host ends leave the bridges now, not some time later
            run_batch(runner, ["ip", "-n", name], [f"link del dev {leg}" for leg in changes.delete_legs[name]])
        proc = runner.run(["ip", "netns", "del", name])
        if proc.returncode != 0:
            failures.append(Failure("router_ns", name, proc.stderr.strip()))
    return failures


def announce_fips(changes: RouterChanges, announce: Announce) -> list[Failure]:
    """Gratuitous ARPs for the floating IPs added in this pass (once the legs are on their bridges)."""
    by_ns: dict[str, list[tuple[str, str, str]]] = {}
    for ns, dev, ip, mac in changes.announce:
        by_ns.setdefault(ns, []).append((dev, ip, mac))
    return [Failure("garp", ns, error) for ns, entries in by_ns.items() for error in announce(ns, entries)]
