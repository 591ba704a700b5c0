"""The OVS dataplane's objects (OVSDB rows and OpenFlow flows), their names, and who owns what.

Ownership (decided up front, like the Linux driver's name prefix + alias):
- an OVSDB Bridge, Port or Interface row is kvnet's when its `external_ids` has `kvnet-owner=kvnet`;
  rows without it (the lab's br-phy, an operator's bridge, a port someone added by hand) are never
  modified or deleted;
- a flow is kvnet's when the top 16 bits of its cookie are `COOKIE_MARK`. The low 48 bits are a hash
  of the flow's own text (table, priority, match, actions), so observing a flow's cookie tells whether
  it is exactly a flow the plan wants: the diff compares cookies, never OVS's re-printed match/action
  syntax. Flows with any other cookie (an operator's, another controller's) are left alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

OWNER_KEY = "kvnet-owner"
OWNER = "kvnet"
KIND_KEY = "kvnet-kind"  # bridge | tunnel | port | physnet-nic | patch
ID_KEY = "kvnet-id"  # the resource id (port id, network id) or the physnet interface

INT_BRIDGE = "kv-int"  # the integration bridge: VM ports, tunnel ports, patches to physnet bridges
VXLAN_PORT = "kv-vxlan"
GRE_PORT = "kv-gre"
TUNNEL_PORTS = {"vxlan": VXLAN_PORT, "gre": GRE_PORT}

COOKIE_MARK = 0x6B76  # "kv"
COOKIE_SHIFT = 48
COOKIE_MASK = (1 << COOKIE_SHIFT) - 1
OWNED_COOKIE_MATCH = f"cookie={COOKIE_MARK << COOKIE_SHIFT:#x}/{0xFFFF << COOKIE_SHIFT:#x}"


def physnet_bridge(interface: str) -> str:
    """`kvp-<nic>` (15 bytes at most: it is also the bridge's internal device)."""
    return _short("kvp-", interface)


def int_patch(interface: str) -> str:
    """The patch port on kv-int towards the physnet bridge of `interface`."""
    return _short("kvpi-", interface)


def phys_patch(interface: str) -> str:
    """The patch port on the physnet bridge towards kv-int."""
    return _short("kvpp-", interface)


def _short(prefix: str, name: str) -> str:
    full = prefix + name
    if len(full) <= 15:
        return full
    return prefix + hashlib.sha1(name.encode()).hexdigest()[: 15 - len(prefix)]


def owned_ids(kind: str, ident: str) -> tuple[tuple[str, str], ...]:
    return ((ID_KEY, ident), (KIND_KEY, kind), (OWNER_KEY, OWNER))


@dataclass(frozen=True)
class Bridge:
    name: str
    datapath_type: str
    external_ids: tuple[tuple[str, str], ...]
    fail_mode: str = "secure"

    def __post_init__(self) -> None:
        object.__setattr__(self, "external_ids", tuple(sorted(self.external_ids)))


@dataclass(frozen=True)
class Port:
    """A Port row with its single Interface row (kvnet never builds bonds)."""

    name: str
    bridge: str
    type: str = ""  # "" = a system device (VM tap, NIC), "vxlan", "gre", "patch"
    options: tuple[tuple[str, str], ...] = ()
    tag: int | None = None  # the network's local VLAN on kv-int (VM ports)
    external_ids: tuple[tuple[str, str], ...] = ()
    mtu_request: int | None = None

    def __post_init__(self) -> None:  # compare as maps: order never matters
        object.__setattr__(self, "options", tuple(sorted(self.options)))
        object.__setattr__(self, "external_ids", tuple(sorted(self.external_ids)))

    @property
    def owned(self) -> bool:
        return dict(self.external_ids).get(OWNER_KEY) == OWNER

    @property
    def kind(self) -> str:
        return dict(self.external_ids).get(KIND_KEY, "")

    @property
    def ident(self) -> str:
        return dict(self.external_ids).get(ID_KEY, "")


@dataclass(frozen=True)
class Flow:
    """One OpenFlow flow in ovs-ofctl syntax, without cookie (the cookie is derived from the text)."""

    bridge: str
    table: int
    priority: int
    match: str  # "" = match everything
    actions: str

    @property
    def text(self) -> str:
        match = f",{self.match}" if self.match else ""
        return f"table={self.table},priority={self.priority}{match} actions={self.actions}"

    @property
    def cookie(self) -> int:
        digest = hashlib.blake2b(f"{self.bridge}|{self.text}".encode(), digest_size=6).digest()
        return (COOKIE_MARK << COOKIE_SHIFT) | int.from_bytes(digest, "big")

    def add_line(self) -> str:
        return f"add cookie={self.cookie:#x},{self.text}"


@dataclass(frozen=True)
class ObservedFlow:
    """A kvnet-owned flow read back: its cookie and the key OVS printed (enough to delete it strictly)."""

    bridge: str
    cookie: int
    table: int
    priority: int
    match: str

    def delete_line(self) -> str:
        match = f",{self.match}" if self.match else ""
        return f"delete_strict table={self.table},priority={self.priority},cookie={self.cookie:#x}/-1{match}"


@dataclass
class DesiredDb:
    bridges: dict[str, Bridge] = field(default_factory=dict)
    ports: dict[str, Port] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)  # network ids this driver cannot build


@dataclass
class ObservedDb:
    """Every Bridge, and every Port on any bridge, with the Interface's ofport (-1: no device yet)."""

    bridges: dict[str, Bridge] = field(default_factory=dict)
    ports: dict[str, Port] = field(default_factory=dict)
    ofports: dict[str, int] = field(default_factory=dict)

    def owned_bridges(self) -> dict[str, Bridge]:
        return {n: b for n, b in self.bridges.items() if dict(b.external_ids).get(OWNER_KEY) == OWNER}

    def owned_ports(self) -> dict[str, Port]:
        return {n: p for n, p in self.ports.items() if p.owned}
