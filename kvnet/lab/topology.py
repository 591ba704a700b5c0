"""Build the lab's namespaces and links (Mininet's `Mininet.build`): underlay switch, "internet", hosts.

Every command names its namespace; nothing here runs against the root namespace, and no link has an
end outside the lab's namespaces.
"""

from __future__ import annotations

from kvnet.lab import names as n
from kvnet.sys import netns
from kvnet.sys.cmd import run


def ip_batch(ns: str, lines: list[str]) -> None:
    """Several `ip` commands in one process, inside `ns` (stops at the first failing line)."""
    run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n")


def sysctl(ns: str, *settings: str) -> None:
    run(["sysctl", "-q", "-w", *settings], netns=ns)


def build_switches(lab: str) -> None:
    """`<lab>-ul` with bridge br-ul (MTU 1550) and `<lab>-ext` with br-ext holding the test server IP."""
    ul, ext = n.ul_ns(lab), n.ext_ns(lab)
    netns.add(ul)
    ip_batch(ul, [f"link add {n.UL_BRIDGE} mtu {n.UNDERLAY_MTU} type bridge stp_state 0 forward_delay 0",
                  f"link set {n.UL_BRIDGE} up"])
    netns.add(ext)
    ip_batch(ext, [f"link add {n.EXT_BRIDGE} type bridge stp_state 0 forward_delay 0",
                   f"addr add {n.EXT_SERVER_CIDR} dev {n.EXT_BRIDGE}",
                   f"link set {n.EXT_BRIDGE} up"])


def build_host(lab: str, host: str, tunnel_ip: str) -> None:
    """Namespace `<lab>-<host>`: ul0 (tunnel IP, MTU 1550) on br-ul, ex0 (no IP, physnet-ext) on br-ext."""
    hns, ul, ext = n.host_ns(lab, host), n.ul_ns(lab), n.ext_ns(lab)
    netns.add(hns)
    sysctl(hns, "net.ipv4.ip_forward=1")
    mtu = str(n.UNDERLAY_MTU)
    run(["ip", "-n", hns, "link", "add", n.HOST_UL_IF, "mtu", mtu, "type", "veth",
         "peer", "name", n.ul_port(host), "mtu", mtu, "netns", ul])
    run(["ip", "-n", hns, "link", "add", n.HOST_EXT_IF, "type", "veth",
         "peer", "name", n.ext_port(host), "netns", ext])
    ip_batch(hns, [f"addr add {tunnel_ip}/24 dev {n.HOST_UL_IF}",
                   f"link set {n.HOST_UL_IF} up",
                   f"link set {n.HOST_EXT_IF} up"])
    ip_batch(ul, [f"link set {n.ul_port(host)} master {n.UL_BRIDGE} up"])
    ip_batch(ext, [f"link set {n.ext_port(host)} master {n.EXT_BRIDGE} up"])
