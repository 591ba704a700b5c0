"""The Linux dataplane's objects, keyed the way the kernel indexes them, and who owns what.

Ownership (Felix's mark-and-sweep, decided up front): a link is kvnet's when its name starts with
`NAME_PREFIX` AND its alias starts with `ALIAS_PREFIX` (the name alone is not enough: the hypervisor's
port taps are named `kvt-...` too). Permanent FDB entries with a remote `dst` and permanent neighbour
entries on kvnet-owned links are kvnet's. Nothing else is ever modified, except that a port device
enslaved to a kvnet bridge gets detached when its port leaves the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvnet.plan import ALIAS_PREFIX, NAME_PREFIX

FLOOD_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True)
class VxlanConf:
    """Fixed at creation: the kernel cannot change these on a live device, so a difference recreates it."""

    vni: int
    local: str
    dstport: int
    learning: bool
    proxy: bool


@dataclass(frozen=True)
class PortConf:
    """Bridge-port (bridge_slave) flags of a link enslaved to a bridge."""

    learning: bool = True
    neigh_suppress: bool = False


@dataclass(frozen=True)
class Link:
    name: str
    kind: str  # "bridge", "vxlan", or whatever the kernel reports for foreign links
    alias: str | None = None
    mtu: int | None = None
    master: str | None = None
    up: bool = True
    vxlan: VxlanConf | None = None
    port: PortConf | None = None  # only compared when not None in the desired link

    @property
    def owned(self) -> bool:
        return self.name.startswith(NAME_PREFIX) and (self.alias or "").startswith(ALIAS_PREFIX)


@dataclass(frozen=True)
class Attachment:
    """A device kvnet does not create (VM tap, physnet NIC) that must be enslaved to a kvnet bridge.

    `owner` names why (``port:<id>`` or ``physnet:<network id>``); `mtu` None leaves the MTU alone,
    `port` None the bridge-port flags.
    """

    device: str
    master: str
    owner: str
    mtu: int | None = None
    port: PortConf | None = None


@dataclass(frozen=True, order=True)
class Fdb:
    """A VXLAN FDB entry (`self`, permanent): unicast MAC -> remote VTEP, or FLOOD_MAC -> one flood VTEP."""

    dev: str
    mac: str
    dst: str

    @property
    def flood(self) -> bool:
        return self.mac == FLOOD_MAC


@dataclass(frozen=True, order=True)
class Neigh:
    """A permanent neighbour (ARP) entry; the kernel keys it by (dev, ip)."""

    dev: str
    ip: str
    mac: str


@dataclass
class DesiredState:
    links: dict[str, Link] = field(default_factory=dict)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    fdb: set[Fdb] = field(default_factory=set)
    neigh: set[Neigh] = field(default_factory=set)
    unsupported: list[str] = field(default_factory=list)  # network ids this kernel/driver cannot build


@dataclass
class ObservedState:
    """Everything `observe` read. `fdb` and `neigh` hold only candidates on kvnet-owned links; `pins`
    every static `master` FDB entry, (device, MAC), on any bridge port (`pinned_fdb` decides which are
    kvnet's)."""

    links: dict[str, Link] = field(default_factory=dict)
    fdb: set[Fdb] = field(default_factory=set)
    neigh: set[Neigh] = field(default_factory=set)
    pins: set[tuple[str, str]] = field(default_factory=set)

    def owned_links(self) -> dict[str, Link]:
        return {name: link for name, link in self.links.items() if link.owned}
