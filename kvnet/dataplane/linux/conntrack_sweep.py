"""End the connections a port's rules no longer allow.

Conntrack lets an established connection through on its entry alone, so removing the rule that allowed
it (or the remote-group member it came from) would change nothing for it. After the filter tables
change, the entries of the ports concerned are read from their network's zone and each is checked
against the port's rules as they are now; those no rule allows are deleted, so their next packet is
judged as new (and dropped). Neutron's OVS firewall does the same; its iptables driver leaves them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kvnet.plan.security import EGRESS, INGRESS, AddressSet, PortFilter, RuleMatch
from kvnet.sys.cmd import in_netns
from kvnet.sys.runner import Runner

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
ICMP = (1, 58)


@dataclass(frozen=True)
class Conn:
    """An entry's original direction (who opened it)."""

    proto: int
    src: Addr
    dst: Addr
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None

    def delete_argv(self, zone: int) -> list[str]:
        argv = ["conntrack", "-D", "-w", str(zone), "-f", f"ipv{self.src.version}", "-s", str(self.src),
                "-d", str(self.dst), "-p", str(self.proto)]
        if self.sport is not None and self.dport is not None:
            argv += ["--sport", str(self.sport), "--dport", str(self.dport)]
        if self.icmp_type is not None:
            argv += ["--icmp-type", str(self.icmp_type), "--icmp-code", str(self.icmp_code or 0)]
            if self.icmp_id is not None:
                argv += ["--icmp-id", str(self.icmp_id)]
        return argv


def parse(text: str) -> list[Conn]:
    """`conntrack -L` lines: `tcp 6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. src=.. ...`; the
    first of each key is the original direction."""
    out = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) < 3 or not tokens[1].isdigit():
            continue
        fields: dict[str, str] = {}
        for token in tokens[2:]:
            key, eq, value = token.partition("=")
            if eq and key not in fields:
                fields[key] = value
        if "src" not in fields or "dst" not in fields:
            continue
        number = {k: int(fields[k]) if fields.get(k, "").isdigit() else None
                  for k in ("sport", "dport", "type", "code", "id")}
        out.append(Conn(int(tokens[1]), ipaddress.ip_address(fields["src"]), ipaddress.ip_address(fields["dst"]),
                        number["sport"], number["dport"], number["type"], number["code"], number["id"]))
    return out


def allowed(conn: Conn, flt: PortFilter, sets: Mapping[str, AddressSet]) -> bool:
    """Whether the port's rules still allow the connection: as its opener (egress rules, the peer being
    the destination) or as its target (ingress rules, the peer being the source)."""
    own = [ipaddress.ip_network(cidr) for cidr, _ in flt.sources]
    ok = True
    if any(conn.src in net for net in own):
        ok = any(_matches(rule, conn.dst, conn, sets) for rule in flt.rules if rule.direction == EGRESS)
    if ok and any(conn.dst in net for net in own):
        ok = any(_matches(rule, conn.src, conn, sets) for rule in flt.rules if rule.direction == INGRESS)
    return ok


def _matches(rule: RuleMatch, peer: Addr, conn: Conn, sets: Mapping[str, AddressSet]) -> bool:
    if (rule.ethertype == "IPv4") != (peer.version == 4):
        return False
    if rule.remote_prefix and peer not in ipaddress.ip_network(rule.remote_prefix):
        return False
    if rule.remote_group:
        members = sets.get(rule.remote_group)
        cidrs = (members.v4 if peer.version == 4 else members.v6) if members else ()
        if not any(peer in ipaddress.ip_network(c) for c in cidrs):
            return False
    if rule.protocol is not None and rule.protocol != conn.proto:
        return False
    if rule.port_min is not None and not (conn.dport is not None and rule.port_min <= conn.dport <= (rule.port_max
                                                                                                    or rule.port_min)):
        return False
    if rule.icmp_type is not None and conn.icmp_type != rule.icmp_type:
        return False
    return rule.icmp_code is None or conn.icmp_code == rule.icmp_code


def sweep(runner: Runner, netns: str | None, filters: Iterable[PortFilter],
          sets: Mapping[str, AddressSet]) -> tuple[int, list[str]]:
    """Delete the entries of `filters`' zones that one of them no longer allows; (deleted, errors)."""
    by_zone: dict[int, list[PortFilter]] = {}
    for flt in filters:
        if flt.ct_zone:
            by_zone.setdefault(flt.ct_zone, []).append(flt)
    deleted, errors = 0, []
    for zone, zone_filters in sorted(by_zone.items()):
        for family in ("ipv4", "ipv6"):
            listing = runner.run(in_netns(["conntrack", "-L", "-w", str(zone), "-f", family], netns))
            if listing.returncode != 0:
                errors.append(f"conntrack -L zone {zone}: {listing.stderr.strip()[:300]}")
                continue
            for conn in parse(listing.stdout):
                if all(allowed(conn, flt, sets) for flt in zone_filters):
                    continue
                proc = runner.run(in_netns(conn.delete_argv(zone), netns))
                if proc.returncode == 0:
                    deleted += 1
                elif "0 flow entries" not in proc.stderr:  # gone meanwhile: fine
                    errors.append(f"conntrack -D zone {zone}: {proc.stderr.strip()[:300]}")
    return deleted, errors
