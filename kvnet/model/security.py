"""Security group rule fields, as Neutron has them: protocols by name or number, and what a rule's port
range means for each protocol (ports for TCP-like protocols, type and code for ICMP)."""

from __future__ import annotations

# IP protocol numbers by the names Neutron accepts (ipv6-icmp is another name of icmpv6).
PROTOCOLS: dict[str, int] = {
    "icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "dccp": 33, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58,
    "ospf": 89, "vrrp": 112, "pgm": 113, "sctp": 132, "udplite": 136,
}
ALIASES = {"ipv6-icmp": "icmpv6", "icmp6": "icmpv6", "any": "", "all": ""}
NAMES = {number: name for name, number in PROTOCOLS.items()}
# Protocols whose rules may give a port range.
PORTED = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})
ICMP = frozenset({"icmp", "icmpv6"})


def protocol(value: object) -> str | None:
    """A rule's protocol in canonical form: a known name, another IP protocol number as digits, or None
    for any protocol."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a protocol name or number")
    text = str(value).strip().lower()
    text = ALIASES.get(text, text)
    if not text:
        return None
    if text.isdigit():
        number = int(text)
        if not 0 <= number <= 255:
            raise ValueError(f"protocol number {number} is outside 0-255")
        return NAMES.get(number, str(number))
    if text not in PROTOCOLS:
        raise ValueError(f"{str(value)[:40]!r} is not a protocol kvnet knows (one of {', '.join(sorted(PROTOCOLS))}, "
                         "an IP protocol number 0-255, or any)")
    return text


def check_range(proto: str | None, ethertype: str, low: int | None, high: int | None) -> tuple[int | None, int | None]:
    """The (port_range_min, port_range_max) a rule keeps, or ValueError naming the field.

    TCP-like protocols: ports 1-65535, `min` alone is one port. ICMP: `min` is the type and `max` the
    code (0-255 each; a code needs a type). Any other protocol: no range."""
    if proto is not None and proto in ICMP:
        if ethertype == "IPv6" and proto == "icmp":
            raise ValueError("protocol: icmp is IPv4's; use icmpv6 with ethertype IPv6")
        if ethertype == "IPv4" and proto == "icmpv6":
            raise ValueError("protocol: icmpv6 is IPv6's; use icmp with ethertype IPv4")
        if high is not None and low is None:
            raise ValueError("port_range_max: an ICMP code (port_range_max) needs a type (port_range_min)")
        for field, what, value in (("port_range_min", "type", low), ("port_range_max", "code", high)):
            if value is not None and not 0 <= value <= 255:
                raise ValueError(f"{field}: ICMP {what} {value} is outside 0-255")
        return low, high
    if low is None and high is None:
        return None, None
    if proto not in PORTED:
        raise ValueError(f"port_range_min: port ranges apply to {', '.join(sorted(PORTED))} (and icmp type/code), "
                         f"not to {proto or 'any protocol'}")
    if low is None:
        raise ValueError("port_range_min: is required with port_range_max")
    high = low if high is None else high
    for field, value in (("port_range_min", low), ("port_range_max", high)):
        if not 1 <= value <= 65535:
            raise ValueError(f"{field}: port {value} is outside 1-65535")
    if low > high:
        raise ValueError(f"port_range_min: {low} is greater than port_range_max {high}")
    return low, high
