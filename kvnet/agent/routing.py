"""Routers and floating IPs -> router namespaces per host, and the router ports each host plugs. Pure.

Placement (`RoutingView.placement`):
- centralized: one namespace on the router's gateway host (Router.gateway_host if set and known,
  else a deterministic pick among network-role hosts, spread by router id). It holds every interface
  (`qr-`), the gateway (`qg-`, with every floating IP as a /32), SNAT and all 1:1 NAT.
- distributed: a namespace on every host with a VM port on one of the router's subnets, all with the
  same gateway IP and MAC on `qr-` (the shared MAC never reaches another host's FDB: tunnel ports do
  not learn -- L2 population is required, as in Neutron), plus the gateway host ("dvr_snat"), which
  also has `qg-` and one SNAT leg `sg-` per subnet with a MAC of its own. VMs without a floating IP
  reach the SNAT namespace through `SNAT_NEXT_HOP` (link-local, resolved to the first subnet's `sg-`
  MAC). A compute host whose VMs have floating IPs gets a second namespace for them ("dvr_fip"):
  `fq-` legs on the router's subnets (a MAC per host), the FIPs on `fg-` (external network, per-host
  MAC) and its default route out of `fg-`; each FIP holder's tap readdresses its frames for the
  shared gateway MAC to its subnet's `fq-` MAC (`gateway_redirects`). Egress that differs by source
  is thereby chosen on L2, and no namespace needs a policy rule (which would cost every packet the
  kernel's merged FIB lookup).

Router ports on the L2 side: centralized interface ports, gateway ports, `sg-` and `fg-` legs are
"bound" to the one host that has them, so L2 population and the ARP responder treat them like VM
ports (`bound_ports`). A distributed router's interface port, and the `fq-` legs, are local on
their host and never a remote entry anywhere (`local_ports`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections import defaultdict
from dataclasses import dataclass

from kvnet.agent.model import CloudModel
from kvnet.model.resources import FixedIP, FloatingIP, Network, Port, Router, Subnet
from kvnet.plan import (
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

ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
ROUTER_SNAT_LEG = "network:router_snat"
ROUTER_FIP_LEG = "network:router_fip"
ROUTER_FIP_NS_LEG = "network:router_fip_interface"
FIP_INSTANCE = "fip"
MAIN_TABLE = 254
# The kernel's three rules, and the only ones any router namespace has (see kvnet.plan.routing).
DEFAULT_RULES = (RuleSpec(0, "local"), RuleSpec(32766, "main"), RuleSpec(32767, "default"))
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
        self.fips_by_router = self._fips_by_router()
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
        return self.fips_by_router.get(router_id, [])

    def _fips_by_router(self) -> dict[str, list[tuple[FloatingIP, Port]]]:
        """Each router's floating IPs with their ports, sorted by address: one pass over the model's FIPs
        (compile asks for them per router and host several times)."""
        out: dict[str, list[tuple[FloatingIP, Port]]] = defaultdict(list)
        for fip in self.model.floatingips.values():
            port = self.model.ports.get(fip.port_id or "")
            if fip.router_id and fip.floating_ip_address and fip.fixed_ip_address and port:
                out[fip.router_id].append((fip, port))
        return {rid: sorted(pairs, key=lambda pair: pair[0].floating_ip_address or "") for rid, pairs in out.items()}

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
        """A distributed router's interface ports on `host`, and its FIP namespace's `fq-` legs there:
        local on that host, known to no other host's L2."""
        out = []
        for router in self.model.routers.values():
            if router.mode == "distributed" and host in self.placements[router.id].hosts:
                out += [_bound(i.port, host) for i in self.interfaces[router.id]]
                if self._has_fip_namespace(router, host):
                    out += [self._fip_ns_leg_port(i, host) for i in self.interfaces[router.id]]
        return out

    def gateway_redirects(self, host: str) -> dict[str, tuple[tuple[str, str], ...]]:
        """port id -> (shared gateway MAC, FIP namespace leg MAC) for every VM port on `host` that holds
        a floating IP of a distributed router's FIP namespace there."""
        out: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for router in self.model.routers.values():
            if not self._has_fip_namespace(router, host):
                continue
            by_subnet = {i.subnet.id: i for i in self.interfaces[router.id]}
            for fip, port in self._local_fips(router, host):
                for fixed in port.fixed_ips:
                    iface = by_subnet.get(fixed.subnet_id or "")
                    if iface and fixed.ip_address == fip.fixed_ip_address:
                        out[port.id].add((iface.port.mac_address or "", _fip_ns_leg_mac(iface, host)))
        return {port_id: tuple(sorted(pairs)) for port_id, pairs in out.items()}

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

    def _fip_ns_leg_port(self, iface: Interface, host: str) -> Port:
        return Port(id=virtual_port_id(iface.port.id, host, "fq"), network_id=iface.network.id,
                    mac_address=_fip_ns_leg_mac(iface, host), binding_host=host,
                    device_owner=ROUTER_FIP_NS_LEG, device_id=iface.port.device_id)

    def _has_fip_namespace(self, router: Router, host: str) -> bool:
        """A distributed router's compute host (not its gateway host) with floating IPs of VMs there."""
        place = self.placements[router.id]
        return (router.mode == "distributed" and self.gateways[router.id] is not None and host in place.hosts
                and host != place.gateway_host and bool(self.interfaces[router.id])
                and bool(self._local_fips(router, host)))

    def _local_fips(self, router: Router, host: str) -> list[tuple[FloatingIP, Port]]:
        if router.mode == "centralized":
            return self.fips(router.id)
        return [(fip, port) for fip, port in self.fips(router.id) if port.binding_host == host]

    # -- router namespaces ------------------------------------------------------------------------------
    def router_plans(self, host: str) -> tuple[RouterPlan, ...]:
        plans = []
        for router in sorted(self.model.routers.values(), key=lambda r: r.id):
            if host in self.placements[router.id].hosts:
                plans.append(self._plan(router, host))
                if self._has_fip_namespace(router, host):
                    plans.append(self._fip_plan(router, host))
        return tuple(plans)

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
                # Everything that is not east-west goes to the SNAT host: main's default route. The FIP
                # holders here are routed by the FIP namespace (`_fip_plan`), so no rule is needed.
                first = ifaces[0]
                routes.append(RouteSpec(MAIN_TABLE, "default", first.leg_name, SNAT_NEXT_HOP, onlink=True))
                neighbours.append(NeighSpec(first.leg_name, SNAT_NEXT_HOP, derived_mac("snat", first.port.id)))
                fips = ()
            plan_kw["fips"] = fips
        return RouterPlan(router_id=router.id, role=role, legs=tuple(sorted(legs)), routes=tuple(sorted(routes)),
                          rules=DEFAULT_RULES, neighbours=tuple(sorted(set(neighbours))), **plan_kw)  # type: ignore[arg-type]

    def _fip_plan(self, router: Router, host: str) -> RouterPlan:
        """The namespace of a distributed router's FIP holders on `host` (their frames are readdressed to
        it on their taps: `gateway_redirects`). `fq-` legs on the router's subnets carry no address, so
        they never answer ARP for the gateway IP (the `dvr` namespace's) and the subnets are explicit
        routes; the FIPs sit on `fg-`; main sends what is not east-west out of `fg-`. By destination
        only: the kernel's three rules and its merged FIB lookup stay."""
        gateway = self.gateways[router.id]
        assert gateway is not None  # _has_fip_namespace
        ifaces = self.interfaces[router.id]
        local = self._local_fips(router, host)
        legs = []
        for i in ifaces:
            port = self._fip_ns_leg_port(i, host)
            legs.append(RouterLeg(_fip_ns_leg_name(i), port_device_name(port.id), i.network.id,
                                  port.mac_address or "", _mtu(i.network)))
        fg_port = self._fip_leg_port(router, gateway, host)
        fg = f"fg-{short_id(router.id)}"
        legs.append(RouterLeg(fg, port_device_name(fg_port.id), gateway.network.id, fg_port.mac_address or "",
                              _mtu(gateway.network), tuple(f"{fip.floating_ip_address}/32" for fip, _ in local)))
        first = _fip_ns_leg_name(ifaces[0])
        # The gateway IP via the SNAT host: replies to what that host translated (a source without FIP
        # reaching a FIP here arrives from it as the gateway IP).
        routes = [*(RouteSpec(MAIN_TABLE, i.cidr, _fip_ns_leg_name(i)) for i in ifaces),
                  RouteSpec(MAIN_TABLE, gateway.ip, first, SNAT_NEXT_HOP, onlink=True),
                  RouteSpec(MAIN_TABLE, gateway.subnet.cidr, fg)]
        if gateway.subnet.gateway_ip:
            routes.append(RouteSpec(MAIN_TABLE, "default", fg, gateway.subnet.gateway_ip))
        neighbours = [NeighSpec(_fip_ns_leg_name(i), ip, port.mac_address or "") for i in ifaces
                      for port, ip in self.vm_ports_by_subnet[i.subnet.id]]
        neighbours.append(NeighSpec(first, SNAT_NEXT_HOP, derived_mac("snat", ifaces[0].port.id)))
        local_ids = {fip.id for fip, _ in local}
        fips = tuple(FloatingIPNat(fip.floating_ip_address or "", fip.fixed_ip_address or "", fip.id in local_ids)
                     for fip, _ in self.fips(router.id))
        return RouterPlan(router_id=router.id, role="dvr_fip", instance=FIP_INSTANCE, legs=tuple(sorted(legs)),
                          routes=tuple(sorted(routes)), rules=DEFAULT_RULES,
                          neighbours=tuple(sorted(set(neighbours))), external_leg=fg, fips=fips)


def _fip_ns_leg_mac(iface: Interface, host: str) -> str:
    return derived_mac("fq", iface.port.id, host)


def _fip_ns_leg_name(iface: Interface) -> str:
    return f"fq-{short_id(iface.port.id)}"


def _bound(port: Port, host: str) -> Port:
    return port.model_copy(update={"binding_host": host})


def _prefixlen(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen
