"""The resources an operator describes, in Neutron's vocabulary.

Each class validates what it can see on its own (field formats and ranges); rules that need other
resources (overlaps, references, uniqueness) live in `kvnet.server.validation`. Resources are plain
pydantic models: the server stores them as JSON under `/kvnet/<kind>/<id>`.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kvnet.model import security

DEFAULT_PROJECT = "default"
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

NetworkType = Literal["flat", "vlan", "vxlan", "gre", "local"]
VnicType = Literal["normal", "vhost", "direct", "passthrough"]
RouterMode = Literal["centralized", "distributed"]
PortStatus = Literal["DOWN", "BUILD", "ACTIVE", "ERROR"]
HostRole = Literal["compute", "network"]
Dataplane = Literal["linux", "ovs"]

# Valid segment ids per network type (VXLAN VNI is 24 bits, GRE key 32 bits, 802.1Q VID 12 bits).
SEGMENT_RANGES: dict[str, tuple[int, int]] = {
    "vlan": (1, 4094),
    "vxlan": (1, 16_777_215),
    "gre": (1, 4_294_967_295),
}
# Bytes the encapsulation adds on the underlay: VXLAN = outer IPv4 20 + UDP 8 + VXLAN 8 + inner
# Ethernet 14; GRE = outer IPv4 20 + GRE with key 8 + inner Ethernet 14.
ENCAP_OVERHEAD: dict[str, int] = {"vxlan": 50, "gre": 42}
MIN_MTU_V4 = 68
MIN_MTU_V6 = 1280


def new_id() -> str:
    return str(uuid.uuid4())


def is_uuid(value: str) -> bool:
    """Whether `value` is a full UUID in its canonical form (ids are; names never are)."""
    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, TypeError, AttributeError):
        return False


def canonical_id(value: object) -> str:
    """A client-chosen id as kvnet stores it: a UUID in canonical lower-case form, or ValueError."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"{str(value)[:60]!r} is not a UUID (ids are UUIDs; leave the id out and the server "
                         "picks one)") from None


def normalize_mac(value: str) -> str:
    """Lower-case colon form; reject malformed and multicast addresses."""
    mac = value.strip().lower().replace("-", ":")
    if not MAC_RE.match(mac):
        raise ValueError(f"'{value}' is not a MAC address (expected six hex octets like fa:16:3e:00:00:01)")
    if int(mac[:2], 16) & 1:
        raise ValueError(f"'{value}' is a multicast MAC address; a port needs a unicast one")
    if mac == "00:00:00:00:00:00":
        raise ValueError("00:00:00:00:00:00 is not a usable MAC address")
    return mac


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"'{value}' is not an IP address") from None


def parse_cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            raise ValueError(f"'{value}' has host bits set (did you mean "
                             f"{ipaddress.ip_network(value, strict=False)}?)") from None
        raise ValueError(f"'{value}' is not a CIDR (expected e.g. 10.0.0.0/24)") from None


class Resource(BaseModel):
    """Common fields: every resource has an id and belongs to a project."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    kind: ClassVar[str]
    # Fields the server computes; clients may not set them on create or update.
    server_fields: ClassVar[frozenset[str]] = frozenset()

    id: str = Field(default_factory=new_id)
    name: str = ""
    project_id: str = DEFAULT_PROJECT

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not NAME_RE.match(value):
            raise ValueError(f"'{value[:80]}' is not a valid name (letters, digits, '_.-', at most 63)")
        if cls.kind != "hosts" and is_uuid(value.lower()):  # a host's name is its id anyway
            raise ValueError(f"'{value}' is a UUID: a name cannot be one, or it would read as an id")
        return value

    @property
    def key(self) -> str:
        return resource_key(self.kind, self.id)

    def ref(self) -> str:
        """How messages name this resource: its name if it has one, else its id."""
        return self.name or self.id


class CloudConfig(Resource):
    """Cloud-wide settings (a singleton with id 'cloud'): pools and dataplane switches."""

    kind: ClassVar[str] = "config"
    id: str = "cloud"
    underlay_mtu: int = Field(1500, ge=576, le=9216)
    vxlan_vni_ranges: list[tuple[int, int]] = [(1001, 99999)]
    gre_key_ranges: list[tuple[int, int]] = [(1001, 99999)]
    vlan_ranges: dict[str, list[tuple[int, int]]] = {}
    base_mac: str = "fa:6b:76"
    l2_population: bool = True
    arp_responder: bool = True

    @field_validator("base_mac")
    @classmethod
    def _base_mac(cls, value: str) -> str:
        value = value.lower()
        if not re.match(r"^([0-9a-f]{2}:){2}[0-9a-f]{2}$", value):
            raise ValueError("expected three hex octets like fa:6b:76")
        first = int(value[:2], 16)
        if first & 1 or not first & 2:
            raise ValueError("must be unicast and locally administered (second-lowest bit of octet 1 set)")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> CloudConfig:
        checks = [("vxlan_vni_ranges", "vxlan", self.vxlan_vni_ranges),
                  ("gre_key_ranges", "gre", self.gre_key_ranges)]
        checks += [(f"vlan_ranges.{net}", "vlan", r) for net, r in self.vlan_ranges.items()]
        for field, net_type, ranges in checks:
            low, high = SEGMENT_RANGES[net_type]
            for first, last in ranges:
                if not low <= first <= last <= high:
                    raise ValueError(f"{field}: {first}-{last} is not within {low}-{high}")
        return self


class Host(Resource):
    """A hypervisor: where its tunnels end, which roles it has, how it reaches each physnet."""

    kind: ClassVar[str] = "hosts"
    server_fields: ClassVar[frozenset[str]] = frozenset({"status", "last_seen", "agent"})

    tunnel_ip: str
    roles: list[HostRole] = ["compute"]
    physnets: dict[str, str] = {}
    dataplane: Dataplane = "linux"
    status: Literal["up", "down", "unknown"] = "unknown"
    last_seen: float | None = None
    agent: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _id_is_name(cls, data: Any) -> Any:
        """A host's id is its name (its hostname): one may stand for the other, they may never differ."""
        if not isinstance(data, dict):
            return data
        name, rid = data.get("name"), data.get("id")
        if not name and not rid:
            raise ValueError("name: a host needs a name (its hostname, which is also its id)")
        if not rid:
            return {**data, "id": name}
        if not name:
            return {**data, "name": rid}
        if rid != name:
            raise ValueError(f"name: a host's name is its id and cannot differ from it or change "
                             f"(id {str(rid)[:60]!r})")
        return data

    @field_validator("tunnel_ip")
    @classmethod
    def _tunnel_ip(cls, value: str) -> str:
        return str(parse_ip(value))

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a host needs at least one role (compute, network)")
        return sorted(set(value))


class Network(Resource):
    kind: ClassVar[str] = "networks"
    server_fields: ClassVar[frozenset[str]] = frozenset({"ct_zone"})

    network_type: NetworkType = "vxlan"
    segmentation_id: int | None = None
    physnet: str | None = None
    mtu: int | None = None
    external: bool = False
    shared: bool = False
    port_security_enabled: bool = True  # what its ports get unless they say otherwise
    # The connection-tracking zone of the network's traffic on every host: tenants with the same
    # addresses never share conntrack state. Unique in the cloud, kept for the network's life.
    ct_zone: int | None = None

    @model_validator(mode="after")
    def _segment(self) -> Network:
        kind = self.network_type
        if kind in ("flat", "vlan") and not self.physnet:
            raise ValueError(f"physnet: a {kind} network needs a physnet")
        if kind in ("vxlan", "gre", "local") and self.physnet:
            raise ValueError(f"physnet: a {kind} network has no physnet")
        if kind in ("flat", "local") and self.segmentation_id is not None:
            raise ValueError(f"segmentation_id: a {kind} network has no segmentation id")
        if self.segmentation_id is not None:
            low, high = SEGMENT_RANGES[kind]
            if not low <= self.segmentation_id <= high:
                label = {"vlan": "VLAN id", "vxlan": "VNI", "gre": "GRE key"}[kind]
                raise ValueError(f"segmentation_id: {label} {self.segmentation_id} is outside {low}-{high}")
        return self


class AllocationPool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _ip(cls, value: str) -> str:
        return str(parse_ip(value))


class HostRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: str
    nexthop: str

    @field_validator("destination")
    @classmethod
    def _dest(cls, value: str) -> str:
        return str(parse_cidr(value))

    @field_validator("nexthop")
    @classmethod
    def _nexthop(cls, value: str) -> str:
        return str(parse_ip(value))


AUTO = "auto"


class Subnet(Resource):
    kind: ClassVar[str] = "subnets"

    network_id: str
    cidr: str
    ip_version: int = 4
    # "auto" = first host address; None = no gateway.
    gateway_ip: str | None = AUTO
    allocation_pools: list[AllocationPool] = []
    dns_nameservers: list[str] = []
    host_routes: list[HostRoute] = []

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = parse_cidr(value)
        if net.num_addresses < 4 and net.version == 4:
            raise ValueError(f"'{value}' is too small: a subnet needs at least a /30")
        return str(net)

    @field_validator("dns_nameservers")
    @classmethod
    def _dns(cls, value: list[str]) -> list[str]:
        return [str(parse_ip(v)) for v in value]

    @model_validator(mode="after")
    def _layout(self) -> Subnet:
        net = ipaddress.ip_network(self.cidr)
        object.__setattr__(self, "ip_version", net.version)
        hosts_first = net.network_address + 1
        hosts_last = net.broadcast_address - (1 if net.version == 4 else 0)
        if self.gateway_ip == AUTO:
            object.__setattr__(self, "gateway_ip", str(hosts_first))
        if self.gateway_ip is not None:
            gw = _ip_field("gateway_ip", self.gateway_ip)
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise ValueError(f"gateway_ip: {gw} is not a usable address of {net}")
            object.__setattr__(self, "gateway_ip", str(gw))
        if not self.allocation_pools:
            pools = _default_pools(hosts_first, hosts_last, self.gateway_ip)
            object.__setattr__(self, "allocation_pools", pools)
        _check_pools(net, self.allocation_pools, self.gateway_ip)
        for i, route in enumerate(self.host_routes):
            if ipaddress.ip_address(route.nexthop) not in net:
                raise ValueError(f"host_routes[{i}].nexthop: {route.nexthop} is not in {net}")
        return self


def _ip_field(field: str, value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return parse_ip(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def _default_pools(first: Any, last: Any, gateway: str | None) -> list[AllocationPool]:
    """The whole host range, minus the gateway."""
    if gateway is None:
        return [AllocationPool(start=str(first), end=str(last))]
    gw = ipaddress.ip_address(gateway)
    pools = []
    if first < gw:
        pools.append(AllocationPool(start=str(first), end=str(gw - 1)))
    if gw < last:
        pools.append(AllocationPool(start=str(gw + 1), end=str(last)))
    return pools


def _check_pools(net: Any, pools: list[AllocationPool], gateway: str | None) -> None:
    spans = []
    for i, pool in enumerate(pools):
        start, end = ipaddress.ip_address(pool.start), ipaddress.ip_address(pool.end)
        field = f"allocation_pools[{i}]"
        if start not in net or end not in net:
            raise ValueError(f"{field}: {start}-{end} is not within {net}")
        if start > end:
            raise ValueError(f"{field}: start {start} is after end {end}")
        if start == net.network_address or (net.version == 4 and end == net.broadcast_address):
            raise ValueError(f"{field}: {start}-{end} includes the network or broadcast address")
        if gateway is not None and start <= ipaddress.ip_address(gateway) <= end:
            raise ValueError(f"{field}: {start}-{end} contains the gateway {gateway}")
        spans.append((start, end, field))
    spans.sort()
    for (_, prev_end, prev_field), (start, _, field) in itertools.pairwise(spans):
        if start <= prev_end:
            raise ValueError(f"{field}: overlaps {prev_field}")


class FixedIP(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subnet_id: str | None = None
    ip_address: str | None = None

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_ip(value))


class AddressPair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ip_address: str
    mac_address: str | None = None

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"'{value}' is not an IP address or CIDR") from None

    @field_validator("mac_address")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        return None if value is None else normalize_mac(value)


class Port(Resource):
    kind: ClassVar[str] = "ports"
    server_fields: ClassVar[frozenset[str]] = frozenset({"status", "status_detail"})

    network_id: str
    fixed_ips: list[FixedIP] = []
    mac_address: str | None = None
    binding_host: str | None = None
    device_id: str = ""
    device_owner: str = ""
    vnic_type: VnicType = "normal"
    binding_profile: dict[str, Any] = {}
    # Not given on create: the network's. With it on, the port sends only from its own addresses and
    # allowed pairs, and its groups' rules apply (`kvnet.server.rules.ports`).
    port_security_enabled: bool = True
    allowed_address_pairs: list[AddressPair] = Field([], max_length=64)
    # Not given on create (a port with port security): its project's `default` group.
    security_group_ids: list[str] = Field([], max_length=64)
    qos_policy_id: str | None = None
    status: PortStatus = "DOWN"
    status_detail: dict[str, Any] = {}

    @field_validator("mac_address")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        return None if value is None else normalize_mac(value)

    def ips(self) -> list[str]:
        return [f.ip_address for f in self.fixed_ips if f.ip_address]


class RouterInterface(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subnet_id: str
    port_id: str


class ExternalGateway(BaseModel):
    model_config = ConfigDict(extra="forbid")
    network_id: str
    port_id: str | None = None
    ip_address: str | None = None


class Router(Resource):
    kind: ClassVar[str] = "routers"
    server_fields: ClassVar[frozenset[str]] = frozenset({"interfaces", "gateway_host"})

    mode: RouterMode = "centralized"
    external_gateway: ExternalGateway | None = None
    interfaces: list[RouterInterface] = []
    # The network-role host that holds a centralized router (and a distributed router's SNAT).
    gateway_host: str | None = None


class FloatingIP(Resource):
    kind: ClassVar[str] = "floatingips"
    server_fields: ClassVar[frozenset[str]] = frozenset({"router_id", "status"})

    floating_network_id: str
    floating_ip_address: str | None = None
    port_id: str | None = None
    fixed_ip_address: str | None = None
    router_id: str | None = None
    status: Literal["DOWN", "ACTIVE"] = "DOWN"

    @field_validator("floating_ip_address", "fixed_ip_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_ip(value))


class SecurityGroupRule(BaseModel):
    """One rule: what a port in the group may receive (ingress) or send (egress). Stateful: the replies
    of an allowed connection are allowed too. `remote_group_id`: from/to any address of that group's
    ports (fixed IPs and allowed address pairs), kept current as they come and go."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(default_factory=new_id)
    direction: Literal["ingress", "egress"]
    ethertype: Literal["IPv4", "IPv6"] = "IPv4"
    protocol: str | None = None  # a name, an IP protocol number, or None: any (security.protocol)
    port_range_min: int | None = None  # tcp/udp/sctp...: first port; icmp/icmpv6: type
    port_range_max: int | None = None  # tcp/udp/sctp...: last port; icmp/icmpv6: code
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None
    description: str = Field("", max_length=255)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: object) -> str | None:
        return security.protocol(value)

    @field_validator("remote_ip_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value[:60]!r} is not a CIDR") from None

    @model_validator(mode="after")
    def _fields(self) -> SecurityGroupRule:
        low, high = security.check_range(self.protocol, self.ethertype, self.port_range_min, self.port_range_max)
        object.__setattr__(self, "port_range_min", low)
        object.__setattr__(self, "port_range_max", high)
        if self.remote_ip_prefix and self.remote_group_id:
            raise ValueError("remote_group_id: give remote_ip_prefix or remote_group_id, not both")
        if self.remote_ip_prefix and ipaddress.ip_network(self.remote_ip_prefix).version != int(self.ethertype[-1]):
            raise ValueError(f"remote_ip_prefix: {self.remote_ip_prefix} is not an {self.ethertype} prefix")
        return self

    def match(self) -> tuple[object, ...]:
        """What the rule allows: two rules with the same match are the same rule, whatever their ids."""
        return (self.direction, self.ethertype, self.protocol, self.port_range_min, self.port_range_max,
                self.remote_ip_prefix, self.remote_group_id)


MAX_RULES = 10_000


class SecurityGroup(Resource):
    """A set of rules for its ports. A group created without rules allows all egress (as Neutron's)."""

    kind: ClassVar[str] = "securitygroups"
    description: str = Field("", max_length=255)
    rules: list[SecurityGroupRule] = Field([], max_length=MAX_RULES)


class QoSPolicy(Resource):
    kind: ClassVar[str] = "qospolicies"
    max_kbps: Annotated[int, Field(ge=8, le=400_000_000)]
    max_burst_kbps: Annotated[int, Field(ge=0, le=400_000_000)] = 0


RESOURCE_TYPES: dict[str, type[Resource]] = {
    cls.kind: cls
    for cls in (CloudConfig, Host, Network, Subnet, Port, Router, FloatingIP, SecurityGroup, QoSPolicy)
}
KEY_PREFIX = "/kvnet/"


def resource_key(kind: str, rid: str) -> str:
    return f"{KEY_PREFIX}{kind}/{rid}"


def kind_prefix(kind: str) -> str:
    return f"{KEY_PREFIX}{kind}/"
