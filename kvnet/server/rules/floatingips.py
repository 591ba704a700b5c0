"""Floating IPs: an address of an external network, mapped 1:1 to a port's fixed IP via a router."""

from __future__ import annotations

import ipaddress

from kvnet.errors import Conflict, Exhausted, InvalidInput
from kvnet.model.resources import FloatingIP, Network, Port, Router, Subnet
from kvnet.server import allocation
from kvnet.server.rules.common import immutable, load, load_all
from kvnet.store.txn import Txn


def create(txn: Txn, fip: FloatingIP) -> None:
    network = load(txn, Network, fip.floating_network_id, field="floating_network_id")
    if not network.external:
        raise InvalidInput(f"network {network.ref()} is not external; floating IPs come from external "
                           "networks", field="floating_network_id")
    subnets = [s for s in load_all(txn, Subnet, track=False) if s.network_id == network.id]
    owner = f"floatingip {fip.id}"
    if fip.floating_ip_address:
        subnet = _subnet_of(subnets, fip.floating_ip_address)
        allocation.claim_ip(txn, subnet, fip.floating_ip_address, owner, "floating_ip_address")
    else:
        fip.floating_ip_address = next(
            (ip for s in subnets if (ip := allocation.allocate_ip(txn, s, owner))), None)
        if fip.floating_ip_address is None:
            raise Exhausted(f"external network {network.ref()} has no free address", field="floating_network_id")
    _associate(txn, fip)


def update(txn: Txn, old: FloatingIP, new: FloatingIP) -> None:
    immutable(old, new, "floating_network_id", "floating_ip_address")
    if (new.port_id, new.fixed_ip_address) != (old.port_id, old.fixed_ip_address):
        if new.port_id != old.port_id and new.fixed_ip_address == old.fixed_ip_address:
            new.fixed_ip_address = None
        _associate(txn, new)


def delete(txn: Txn, fip: FloatingIP) -> None:
    for subnet in load_all(txn, Subnet, track=False):
        if subnet.network_id == fip.floating_network_id and fip.floating_ip_address \
                and _in(subnet, fip.floating_ip_address):
            allocation.release_ip(txn, subnet.id, fip.floating_ip_address)


def _associate(txn: Txn, fip: FloatingIP) -> None:
    if not fip.port_id:
        fip.fixed_ip_address = fip.router_id = None
        fip.status = "DOWN"
        return
    port = load(txn, Port, fip.port_id, field="port_id")
    candidates = [f for f in port.fixed_ips if f.ip_address and ipaddress.ip_address(f.ip_address).version == 4]
    if fip.fixed_ip_address:
        candidates = [f for f in candidates if f.ip_address == fip.fixed_ip_address]
        if not candidates:
            raise InvalidInput(f"{fip.fixed_ip_address} is not an IPv4 address of port {port.id}",
                               field="fixed_ip_address")
    if not candidates:
        raise InvalidInput(f"port {port.id} has no IPv4 address to map to", field="port_id")
    fixed = candidates[0]
    router = _router_between(txn, fixed.subnet_id or "", fip.floating_network_id)
    if router is None:
        raise InvalidInput(f"no router connects subnet {fixed.subnet_id} to external network "
                           f"{fip.floating_network_id}", field="port_id")
    for other in load_all(txn, FloatingIP):
        if other.id != fip.id and other.port_id == port.id and other.fixed_ip_address == fixed.ip_address:
            raise Conflict(f"{fixed.ip_address} of port {port.id} already has floating IP "
                           f"{other.floating_ip_address}", field="port_id")
    fip.fixed_ip_address, fip.router_id, fip.status = fixed.ip_address, router.id, "ACTIVE"


def _router_between(txn: Txn, subnet_id: str, external_network_id: str) -> Router | None:
    for router in load_all(txn, Router):
        gateway = router.external_gateway
        if gateway and gateway.network_id == external_network_id \
                and any(i.subnet_id == subnet_id for i in router.interfaces):
            return router
    return None


def _subnet_of(subnets: list[Subnet], ip: str) -> Subnet:
    for subnet in subnets:
        if _in(subnet, ip):
            return subnet
    raise InvalidInput(f"{ip} is not in any subnet of the external network", field="floating_ip_address")


def _in(subnet: Subnet, ip: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(subnet.cidr)
