"""Kernel and OVS names derived from resource ids: the same model gives the same names on every restart,
so an agent adopts what it finds. Linux limits interface names to 15 bytes."""

from __future__ import annotations

# Every kernel object kvnet creates starts with this prefix (links) or carries this alias.
NAME_PREFIX = "kv"
ALIAS_PREFIX = "kvnet:"
SHORT_ID_LEN = 10
VXLAN_UDP_PORT = 4789


def short_id(resource_id: str) -> str:
    """The first 10 hex digits of a UUID: unique enough inside one cloud, short enough for ifnames."""
    return resource_id.replace("-", "")[:SHORT_ID_LEN]


def bridge_name(network_id: str) -> str:
    return f"kvb-{short_id(network_id)}"


def tunnel_name(network_id: str) -> str:
    return f"kvx-{short_id(network_id)}"


def port_device_name(port_id: str) -> str:
    """The VM's tap (or the lab's veth end) on the host; the hypervisor creates it with this name."""
    return f"kvt-{short_id(port_id)}"
