"""Routers and floating IPs -> router namespaces per host, and the router ports each host plugs. Pure.

Placement (`RoutingView.placement`):
- centralized: one namespace on the router's gateway host (Router.gateway_host if set and known,
  else a deterministic pick among network-role hosts, spread by router id). It holds every interface
  (`qr-`), the gateway (`qg-`, with every floating IP as a /32), SNAT and all 1:1 NAT.
- distributed: a namespace on every host with a VM port on one of the router's subnets, all with the
  same gateway IP and MAC on `qr-` (the shared MAC never reaches another host's FDB: tunnel ports do
  not learn -- L2 population is required, as in Neutron), plus the gateway host ("dvr_snat"), which
  also has `qg-` and one SNAT leg `sg-` per subnet with a MAC of its own. A VM's floating IP lives on
  its own host's `fg-` leg (external network, per-host MAC); VMs without one reach the SNAT
  namespace through `SNAT_NEXT_HOP` (link-local, resolved to the first subnet's `sg-` MAC).

Router ports on the L2 side: centralized interface ports, gateway ports, `sg-` and `fg-` legs are
"bound" to the one host that has them, so L2 population and the ARP responder treat them like VM
ports (`bound_ports`). A distributed router's interface port is local on every host of the router
and never a remote entry anywhere (`local_ports`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace

from kvnet.agent.model import CloudModel
from kvnet.agent.plan import (
    FIP_TABLE,
    MARK_TO_SNAT,
    RULE_FIP,
    RULE_LOCAL,
    RULE_TO_SNAT,
    SNAT_NEXT_HOP,
    FloatingIPNat,
    NeighSpec,
    RouterLeg,
    RouterPlan,
    RouteSpec,
    RuleSpec,
    port_device_name,
    short_id,
)
from kvnet.model.resources import FixedIP, FloatingIP, Network, Port, Router, Subnet

ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
ROUTER_SNAT_LEG = "network:router_snat"
ROUTER_FIP_LEG = "network:router_fip"
MAIN_TABLE = 254
DEFAULT_RULES = (RuleSpec(0, "local"), RuleSpec(32766, "main"), RuleSpec(32767, "default"))  # the kernel's
_VIRTUAL_NS = uuid.UUID("6b766e65-742d-726f-7574-696e67000000")


def derived_mac(*parts: str) -> str:
    """A locally administered unicast MAC derived from `parts` (never in the cloud's base_mac range)."""
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return "02:6b:" + ":".join(f"{b:02x}" for b in digest[:4])


def virtual_port_id(*parts: str) -> str:
    """Stable id of a router leg that is not a model port (SNAT and FIP legs)."""
    return str(uuid.uuid5(_VIRTUAL_NS, ":".join(parts)))


@dataclass(frozen=True)
class Interface:
    port: Port
    subnet: Subnet
    network: Network

    @property
    def leg_name(self) -> str:
        return f"qr-{short_id(self.port.id)}"

    @property
    def cidr(self) -> str:
        return self.subnet.cidr


@dataclass(frozen=True)
class Gateway:
    port: Port
    ip: str
    subnet: Subnet
    network: Network

    @property
    def leg_name(self) -> str:
        return f"qg-{short_id(self.port.id)}"


@dataclass(frozen=True)
class DvrOutside:
    """What a DVR instance on a compute host adds to reach beyond its router (`_dvr_outside`)."""

    legs: list[RouterLeg] = field(default_factory=list)
    routes: list[RouteSpec] = field(default_factory=list)
    neighbours: list[NeighSpec] = field(default_factory=list)
    rules: tuple[RuleSpec, ...] = ()  # empty: the kernel's three
    external_leg: str | None = None


@dataclass(frozen=True)
class Placement:
    gateway_host: str | None
    hosts: frozenset[str]


def _mtu(network: Network) -> int:
    return network.mtu or 1500


def _is_vm_port(port: Port) -> bool:
    return not port.device_owner.startswith("network:")


class RoutingView:
    """Everything compile needs about routers, computed once per model."""

    def __init__(self, model: CloudModel) -> None:
        self.model = model
        self.interfaces: dict[str, list[Interface]] = {r.id: self._interfaces(r) for r in model.routers.values()}
        self.gateways: dict[str, Gateway | None] = {r.id: self._gateway(r) for r in model.routers.values()}
        self.vm_ports_by_subnet: dict[str, list[tuple[Port, str]]] = defaultdict(list)
        for port in model.ports.values():
            if _is_vm_port(port) and port.mac_address:
                for fixed in port.fixed_ips:
                    if fixed.subnet_id and fixed.ip_address:
                        self.vm_ports_by_subnet[fixed.subnet_id].append((port, fixed.ip_address))
        self.placements = {r.id: self._placement(r) for r in model.routers.values()}

    # -- model lookups ------------------------------------------------------------------------------
    def _interfaces(self, router: Router) -> list[Interface]:
        out = []
        for iface in router.interfaces:
            port = self.model.ports.get(iface.port_id)
            subnet = self.model.subnets.get(iface.subnet_id)
            network = self.model.networks.get(subnet.network_id) if subnet else None
            if port and subnet and network and port.mac_address and subnet.gateway_ip:
                out.append(Interface(port, subnet, network))
        return sorted(out, key=lambda i: i.port.id)

    def _gateway(self, router: Router) -> Gateway | None:
        gw = router.external_gateway
        if gw is None or not gw.port_id or not gw.ip_address:
            return None
        port = self.model.ports.get(gw.port_id)
        network = self.model.networks.get(gw.network_id)
        ip = ipaddress.ip_address(gw.ip_address)
        subnet = next((s for s in self.model.subnets.values()
                       if s.network_id == gw.network_id and ip in ipaddress.ip_network(s.cidr)), None)
        if port is None or network is None or subnet is None or not port.mac_address:
            return None
        return Gateway(port, gw.ip_address, subnet, network)

    def _gateway_host(self, router: Router) -> str | None:
        hosts = self.model.hosts
        if router.gateway_host and router.gateway_host in hosts:
            return router.gateway_host
        candidates = sorted(name for name, h in hosts.items() if "network" in h.roles)
        if not candidates:
            return None
        return candidates[int(hashlib.sha256(router.id.encode()).hexdigest(), 16) % len(candidates)]

    def _placement(self, router: Router) -> Placement:
        gateway_host = self._gateway_host(router)
        if router.mode == "centralized":
            return Placement(gateway_host, frozenset({gateway_host} if gateway_host else ()))
        hosts = {port.binding_host for iface in self.interfaces[router.id]
                 for port, _ in self.vm_ports_by_subnet[iface.subnet.id]
                 if port.binding_host in self.model.hosts}
        snat_host = gateway_host if self.gateways[router.id] else None
        if snat_host:
            hosts.add(snat_host)
        return Placement(snat_host, frozenset(h for h in hosts if h))

    def fips(self, router_id: str) -> list[tuple[FloatingIP, Port]]:
        out = []
        for fip in self.model.floatingips.values():
            port = self.model.ports.get(fip.port_id or "")
            if fip.router_id == router_id and fip.floating_ip_address and fip.fixed_ip_address and port:
                out.append((fip, port))
        return sorted(out, key=lambda pair: pair[0].floating_ip_address or "")

    # -- ports for L2 ----------------------------------------------------------------------------------
    def bound_ports(self) -> list[Port]:
        """Router legs that exist on exactly one host, as ports bound there (for L2 population)."""
        out: list[Port] = []
        for router in self.model.routers.values():
            place = self.placements[router.id]
            gateway = self.gateways[router.id]
            if place.gateway_host is None:
                continue
            if router.mode == "centralized":
                out += [_bound(i.port, place.gateway_host) for i in self.interfaces[router.id]]
            else:
                out += [self._snat_leg_port(i, place.gateway_host) for i in self.interfaces[router.id]]
                out += [self._fip_leg_port(router, gateway, host) for host in sorted(place.hosts)
                        if gateway and host != place.gateway_host and self._local_fips(router, host)]
            if gateway:
                out.append(_bound(gateway.port, place.gateway_host))
        return out

    def local_ports(self, host: str) -> list[Port]:
        """A distributed router's interface ports on `host`: local there, known to no other host's L2."""
        return [_bound(i.port, host) for router in self.model.routers.values()
                if router.mode == "distributed" and host in self.placements[router.id].hosts
                for i in self.interfaces[router.id]]

    def _snat_leg_port(self, iface: Interface, host: str) -> Port:
        return Port(id=virtual_port_id(iface.port.id, "snat"), network_id=iface.network.id,
                    mac_address=derived_mac("snat", iface.port.id), binding_host=host,
                    device_owner=ROUTER_SNAT_LEG, device_id=iface.port.device_id)

    def _fip_leg_port(self, router: Router, gateway: Gateway, host: str) -> Port:
        return Port(id=virtual_port_id(router.id, host, "fip"), network_id=gateway.network.id,
                    mac_address=derived_mac("fip", router.id, host), binding_host=host,
                    device_owner=ROUTER_FIP_LEG, device_id=router.id,
                    fixed_ips=[FixedIP(subnet_id=gateway.subnet.id, ip_address=fip.floating_ip_address)
                               for fip, _ in self._local_fips(router, host)])

    def _local_fips(self, router: Router, host: str) -> list[tuple[FloatingIP, Port]]:
        if router.mode == "centralized":
            return self.fips(router.id)
        return [(fip, port) for fip, port in self.fips(router.id) if port.binding_host == host]

    def _dvr_outside(self, router: Router, gateway: Gateway, host: str, ifaces: list[Interface],
                     fips: tuple[FloatingIPNat, ...]) -> DvrOutside:
        """How a DVR instance on a compute host reaches beyond its router: the SNAT host by default;
        with local FIPs, their `fg-` leg on the external network, routed by source only if it must be."""
        first = ifaces[0]
        to_snat_host = RouteSpec(MAIN_TABLE, "default", first.leg_name, SNAT_NEXT_HOP, onlink=True)
        neighbours = [NeighSpec(first.leg_name, SNAT_NEXT_HOP, derived_mac("snat", first.port.id))]
        local_fip_addrs = tuple(f"{f.floating_ip}/32" for f in fips if f.local)
        if not local_fip_addrs:
            return DvrOutside(routes=[to_snat_host], neighbours=neighbours)  # no rule, no fg-
        fg = f"fg-{short_id(router.id)}"
        fip_leg = self._fip_leg_port(router, gateway, host)
        leg = RouterLeg(fg, port_device_name(fip_leg.id), gateway.network.id, fip_leg.mac_address or "",
                        _mtu(gateway.network), local_fip_addrs)
        # Where a VM with a FIP here sends outside its router: the gateway IP (replies to what the SNAT
        # host translated), the external subnet and the default through fg-.
        outside = [RouteSpec(0, gateway.ip, first.leg_name, SNAT_NEXT_HOP, onlink=True),
                   RouteSpec(0, gateway.subnet.cidr, fg)]
        if gateway.subnet.gateway_ip:
            outside.append(RouteSpec(0, "default", fg, gateway.subnet.gateway_ip))
        if not self._unfloated_sources(ifaces, fips, host):
            # Every local source has a FIP: main routes like a FIP table would, and the kernel keeps its
            # three rules (any other rule costs every packet the merged FIB lookup).
            return DvrOutside([leg], [replace(r, table=MAIN_TABLE) for r in outside], neighbours, (), fg)
        # Otherwise the FIP holders get a table of their own, with the tenant subnets too (east-west and
        # hairpin stay inside). The FIPs are local addresses here (fg- answers ARP for them), so a source
        # without FIP reaching one is steered by mark to the SNAT host before `local` delivers it.
        routes = [to_snat_host, *(RouteSpec(FIP_TABLE, i.cidr, i.leg_name) for i in ifaces),
                  *(replace(r, table=FIP_TABLE) for r in outside)]
        rules = [*(r for r in DEFAULT_RULES if r.table != "local"),
                 RuleSpec(RULE_TO_SNAT, "main", fwmark=MARK_TO_SNAT), RuleSpec(RULE_LOCAL, "local"),
                 *(RuleSpec(RULE_FIP, str(FIP_TABLE), src=f.fixed_ip) for f in fips if f.local)]
        return DvrOutside([leg], routes, neighbours, tuple(rules), fg)

    def _unfloated_sources(self, ifaces: list[Interface], fips: tuple[FloatingIPNat, ...], host: str) -> bool:
        """Whether a VM address on `host` in the router's subnets has no floating IP (then FIP egress
        has to be routed by source)."""
        floated = {f.fixed_ip for f in fips if f.local}
        return any(port.binding_host == host and ip not in floated
                   for i in ifaces for port, ip in self.vm_ports_by_subnet[i.subnet.id])

    # -- router namespaces ------------------------------------------------------------------------------
    def router_plans(self, host: str) -> tuple[RouterPlan, ...]:
        return tuple(self._plan(router, host) for router in sorted(self.model.routers.values(), key=lambda r: r.id)
                     if host in self.placements[router.id].hosts)

    def _plan(self, router: Router, host: str) -> RouterPlan:
        place = self.placements[router.id]
        gateway = self.gateways[router.id]
        ifaces = self.interfaces[router.id]
        on_gateway = host == place.gateway_host
        role = "centralized" if router.mode == "centralized" else ("dvr_snat" if on_gateway else "dvr")
        legs = [RouterLeg(i.leg_name, port_device_name(i.port.id), i.network.id, i.port.mac_address or "",
                          _mtu(i.network), (f"{i.subnet.gateway_ip}/{_prefixlen(i.cidr)}",)) for i in ifaces]
        neighbours = [NeighSpec(i.leg_name, ip, port.mac_address or "") for i in ifaces
                      for port, ip in self.vm_ports_by_subnet[i.subnet.id]]
        routes: list[RouteSpec] = []
        rules = list(DEFAULT_RULES)
        plan_kw: dict[str, object] = {}
        if gateway is not None:
            local_ids = {fip.id for fip, _ in self._local_fips(router, host)}
            fips = tuple(FloatingIPNat(fip.floating_ip_address or "", fip.fixed_ip_address or "", fip.id in local_ids)
                         for fip, _ in self.fips(router.id))
            local_fip_addrs = tuple(f"{f.floating_ip}/32" for f in fips if f.local)
            ext_gw = gateway.subnet.gateway_ip
            if on_gateway:
                legs.append(RouterLeg(gateway.leg_name, port_device_name(gateway.port.id), gateway.network.id,
                                      gateway.port.mac_address or "", _mtu(gateway.network),
                                      (f"{gateway.ip}/{_prefixlen(gateway.subnet.cidr)}", *local_fip_addrs)))
                if ext_gw:
                    routes.append(RouteSpec(MAIN_TABLE, "default", gateway.leg_name, ext_gw))
                if role == "dvr_snat":
                    for i in ifaces:
                        leg = self._snat_leg_port(i, host)
                        legs.append(RouterLeg(f"sg-{short_id(i.port.id)}", port_device_name(leg.id), i.network.id,
                                              leg.mac_address or "", _mtu(i.network)))
                plan_kw = {"external_leg": gateway.leg_name, "snat_ip": gateway.ip,
                           "snat_subnets": tuple(i.cidr for i in ifaces)}
            elif ifaces:
                dvr = self._dvr_outside(router, gateway, host, ifaces, fips)
                legs += dvr.legs
                routes += dvr.routes
                neighbours += dvr.neighbours
                rules = list(dvr.rules or rules)
                if dvr.external_leg:
                    plan_kw["external_leg"] = dvr.external_leg
            plan_kw["fips"] = fips
        return RouterPlan(router_id=router.id, role=role, legs=tuple(sorted(legs)), routes=tuple(sorted(routes)),
                          rules=tuple(sorted(set(rules))), neighbours=tuple(sorted(set(neighbours))),
                          **plan_kw)  # type: ignore[arg-type]


def _bound(port: Port, host: str) -> Port:
    return port.model_copy(update={"binding_host": host})


def _prefixlen(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen
