"""A port's rules as elements of nftables interval sets of concatenations: one lookup per set, however
many rules (`filter_render.sg_chain`).

Each rule is a box: one range per field (protocol . [port or ICMP type . code] . peer address). A set
of such boxes may hold overlapping ones, except that the kernel (nft_pipapo_insert) refuses a box
whose first or last corner lies in a box the set has already. So boxes inside another are dropped
(the union is the same), and the rest are dealt into as few sets as keep that rule: usually one.
Computed once per distinct rule list (ports with the same groups share it).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from kvnet.plan.security import RuleMatch

ANYWHERE = {"4": "0.0.0.0/0", "6": "::/0"}
Range = tuple[int, int]


@dataclass(frozen=True)
class Box:
    kind: str  # "proto" (protocol . peer), "port" (protocol . port . peer), "icmp" (type . code . peer)
    fields: tuple[Range, ...]
    element: str  # as nft writes it

    def corners(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(lo for lo, _ in self.fields), tuple(hi for _, hi in self.fields)

    def holds(self, point: tuple[int, ...]) -> bool:
        return all(lo <= x <= hi for (lo, hi), x in zip(self.fields, point, strict=True))

    def inside(self, other: Box) -> bool:
        return all(olo <= lo and hi <= ohi for (lo, hi), (olo, ohi) in zip(self.fields, other.fields, strict=True))

    def clashes(self, other: Box) -> bool:
        return any(other.holds(c) for c in self.corners()) or any(self.holds(c) for c in other.corners())


def box(rule: RuleMatch, version: str) -> Box:
    peer_text = rule.remote_prefix or ANYWHERE[version]
    peer_net = ipaddress.ip_network(peer_text)
    peer = (int(peer_net.network_address), int(peer_net.broadcast_address))
    proto = (0, 255) if rule.protocol is None else (rule.protocol, rule.protocol)
    proto_text = "0-255" if rule.protocol is None else str(rule.protocol)
    if rule.port_min is not None:
        high = rule.port_max or rule.port_min
        ports = str(rule.port_min) if rule.port_min == high else f"{rule.port_min}-{high}"
        return Box("port", (proto, (rule.port_min, high), peer), f"{proto_text} . {ports} . {peer_text}")
    if rule.icmp_type is not None:
        code = (0, 255) if rule.icmp_code is None else (rule.icmp_code, rule.icmp_code)
        code_text = "0-255" if rule.icmp_code is None else str(rule.icmp_code)
        return Box("icmp", ((rule.icmp_type, rule.icmp_type), code, peer),
                   f"{rule.icmp_type} . {code_text} . {peer_text}")
    return Box("proto", (proto, peer), f"{proto_text} . {peer_text}")


def rule_sets(rules: Iterable[RuleMatch], version: str) -> list[tuple[str, frozenset[str]]]:
    """(kind, elements) per set, kinds in a fixed order."""
    return list(_rule_sets(tuple(rules), version))


@lru_cache(maxsize=256)
def _rule_sets(rules: tuple[RuleMatch, ...], version: str) -> tuple[tuple[str, frozenset[str]], ...]:
    out: list[tuple[str, frozenset[str]]] = []
    boxes = {box(rule, version) for rule in rules}
    for kind in ("icmp", "port", "proto"):
        mine = _Index([b for b in boxes if b.kind == kind])
        kept = _Index([b for b in mine.boxes if not any(b.inside(o) and (o.fields != b.fields or o.element < b.element)
                                                        for o in mine.meeting(b) if o != b)])
        shelf_of: dict[Box, int] = {}
        for b in sorted(kept.boxes, key=lambda b: b.fields):
            taken = {shelf_of[o] for o in kept.meeting(b) if o in shelf_of and b.clashes(o)}
            shelf_of[b] = next(i for i in range(len(kept.boxes) + 1) if i not in taken)
        shelves: dict[int, set[str]] = {}
        for b, shelf in shelf_of.items():
            shelves.setdefault(shelf, set()).add(b.element)
        out += [(kind, frozenset(shelves[i])) for i in sorted(shelves)]
    return tuple(out)


class _Index:
    """Boxes sorted by the start of their middle field (ports, ICMP codes, protocols: where rules differ
    most), with that field's widest extent: the boxes meeting one are found by bisection, not a scan."""

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = sorted(boxes, key=lambda b: (b.fields[-2][0], -_volume(b)))  # big ones first: they hold
        self.starts = [b.fields[-2][0] for b in self.boxes]
        self.widest = max((b.fields[-2][1] - b.fields[-2][0] for b in self.boxes), default=0)

    def meeting(self, b: Box) -> Iterator[Box]:
        """The boxes whose ranges meet `b`'s in every field (only they can hold or clash with it)."""
        lo, hi = b.fields[-2]
        first = bisect.bisect_left(self.starts, lo - self.widest)
        last = bisect.bisect_right(self.starts, hi)
        return (o for o in self.boxes[first:last]
                if all(olo <= bhi and blo <= ohi for (olo, ohi), (blo, bhi) in zip(o.fields, b.fields, strict=True)))


def _volume(b: Box) -> float:
    product = 1.0
    for lo, hi in b.fields:
        product *= hi - lo + 1
    return product
