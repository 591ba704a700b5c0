"""apply_routers(changes, host_netns) -> errors: write RouterChanges to the kernel, batched per namespace.

Order: new namespaces (with their sysctls) -> veth pairs, created from the host namespace with the
router end moved straight into its namespace -> one `ip -batch` per namespace (legs, addresses, rules,
routes, neighbours) -> one nft transaction per namespace -> namespaces no longer planned. After the L2
pass has plugged the legs: gratuitous ARP for the floating IPs just added (`announce_fips`).
Failures are returned; the next reconcile re-observes and retries.
"""

from __future__ import annotations

from kvnet.dataplane.linux.garp import announce
from kvnet.dataplane.linux.observe import tool
from kvnet.dataplane.linux.router_diff import RouterChanges
from kvnet.sys import netns as netns_mod
from kvnet.sys.cmd import CommandError, run

# Forwarding on; reverse-path filter off (the SNAT host answers a DVR host's traffic on another leg
# than it arrived on); no ICMP redirects (hairpin leaves through the leg it came in on); ARP answered
# only for the leg's own addresses (a tenant subnet never learns a floating IP's leg).
ROUTER_SYSCTLS = ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                  "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
                  "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.default.arp_ignore=1")


def create_namespace(name: str) -> None:
    netns_mod.delete(name)  # a half-created one (its file exists, observe could not enter it)
    netns_mod.add(name)
    run(["sysctl", "-q", "-w", *ROUTER_SYSCTLS], netns=name)


def _batch(argv: list[str], lines: list[str]) -> str | None:
    proc = run([*argv, "-force", "-batch", "-"], input="\n".join(lines) + "\n", check=False, timeout=300)
    if proc.returncode == 0:
        return None
    return f"{' '.join(argv)} -batch ({len(lines)} lines): {proc.stderr.strip()[:2000]}"


def apply_routers(changes: RouterChanges, host_netns: str | None) -> list[str]:
    errors: list[str] = []
    for name in changes.create_ns:
        try:
            create_namespace(name)
        except CommandError as exc:
            errors.append(str(exc))
    if changes.veth_add:
        lines = [f"link add {leg.device} mtu {leg.mtu} type veth peer name {leg.name} address {leg.mac} "
                 f"mtu {leg.mtu} netns {ns}" for ns, leg in changes.veth_add]
        if err := _batch(tool("ip", host_netns), lines):
            errors.append(err)
    for name, lines in changes.ns_lines.items():
        if err := _batch(["ip", "-n", name], lines):
            errors.append(err)
    for name, script in changes.nft.items():
        proc = run(["nft", "-f", "-"], netns=name, input=script, check=False)
        if proc.returncode != 0:
            errors.append(f"nft in {name}: {proc.stderr.strip()[:2000]}")
    for name in changes.delete_ns:
        netns_mod.delete(name)
    return errors


def announce_fips(changes: RouterChanges) -> list[str]:
    """Gratuitous ARPs for the floating IPs added in this pass (once the legs are on their bridges)."""
    errors: list[str] = []
    by_ns: dict[str, list[tuple[str, str, str]]] = {}
    for ns, dev, ip, mac in changes.announce:
        by_ns.setdefault(ns, []).append((dev, ip, mac))
    for ns, entries in by_ns.items():
        errors += announce(ns, entries)
    return errors
