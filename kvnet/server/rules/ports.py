"""Ports: MAC and fixed IP allocation, binding to a host, references to policies."""

from __future__ import annotations

from typing import Any

from kvnet.errors import Conflict, Exhausted, IdTaken, InvalidInput
from kvnet.model.resources import FixedIP, FloatingIP, Host, Network, Port, QoSPolicy, Subnet
from kvnet.server import allocation
from kvnet.server.rules import port_security
from kvnet.server.rules.common import immutable, load, load_all, save
from kvnet.server.rules.vf_binding import bind_vf
from kvnet.store.txn import Txn

ROUTER_OWNERS = ("network:router_interface", "network:router_gateway")


def create(txn: Txn, port: Port) -> None:
    allocation.claim_short_id(txn, Port.kind, port.id)
    network = load(txn, Network, port.network_id, field="network_id")
    _check_references(txn, port)
    port_security.settle(txn, port, network, creating=True)
    bind_vf(txn, port)
    if port.mac_address:
        allocation.claim_mac(txn, port.mac_address, f"port {port.id}")
    else:
        port.mac_address = allocation.allocate_mac(txn, allocation.load_config(txn), f"port {port.id}")
    subnets = [s for s in load_all(txn, Subnet, track=False) if s.network_id == network.id]
    requested = port.fixed_ips or ([FixedIP()] if subnets else [])
    port.fixed_ips = [_assign(txn, port, subnets, f, i) for i, f in enumerate(requested)]
    port.status = "BUILD" if port.binding_host else "DOWN"


def create_owned(txn: Txn, **fields: Any) -> Port:
    """A port the server makes for a router (interface, gateway), saved; its id is picked again in the
    rare case that its short form is taken (nothing is written before that check)."""
    for attempt in range(allocation.ID_ATTEMPTS):
        port = Port(**fields)
        try:
            create(txn, port)
        except IdTaken:
            if attempt == allocation.ID_ATTEMPTS - 1:
                raise
            continue
        save(txn, port)
        return port
    raise AssertionError("unreachable")


def update(txn: Txn, old: Port, new: Port) -> None:
    immutable(old, new, "network_id")
    _check_references(txn, new)
    port_security.settle(txn, new, load(txn, Network, new.network_id), creating=False)
    bind_vf(txn, new, old)
    if new.mac_address != old.mac_address:
        if new.mac_address is None:
            raise InvalidInput("cannot be removed", field="mac_address")
        allocation.claim_mac(txn, new.mac_address, f"port {new.id}")
        allocation.release_mac(txn, old.mac_address or "")
    if new.fixed_ips != old.fixed_ips:
        _release_ips(txn, old)
        subnets = [s for s in load_all(txn, Subnet, track=False) if s.network_id == new.network_id]
        new.fixed_ips = [_assign(txn, new, subnets, f, i) for i, f in enumerate(new.fixed_ips)]
    if new.binding_host != old.binding_host or new.fixed_ips != old.fixed_ips:
        new.status = "BUILD" if new.binding_host else "DOWN"
        new.status_detail = {}


def delete(txn: Txn, port: Port) -> None:
    if port.device_owner in ROUTER_OWNERS:
        raise Conflict(f"port {port.id} belongs to router {port.device_id}; remove the router interface "
                       "or gateway instead", field="device_owner")
    release(txn, port)


def release(txn: Txn, port: Port) -> None:
    """Free everything the port holds and detach floating IPs from it."""
    allocation.release_short_id(txn, Port.kind, port.id)
    _release_ips(txn, port)
    if port.mac_address:
        allocation.release_mac(txn, port.mac_address)
    for fip in load_all(txn, FloatingIP):
        if fip.port_id == port.id:
            fip.port_id = fip.fixed_ip_address = fip.router_id = None
            fip.status = "DOWN"
            save(txn, fip)


def _release_ips(txn: Txn, port: Port) -> None:
    for fixed in port.fixed_ips:
        if fixed.subnet_id and fixed.ip_address:
            allocation.release_ip(txn, fixed.subnet_id, fixed.ip_address)


def _check_references(txn: Txn, port: Port) -> None:
    if port.binding_host:
        load(txn, Host, port.binding_host, field="binding_host")
    if port.qos_policy_id:
        load(txn, QoSPolicy, port.qos_policy_id, field="qos_policy_id")


def _assign(txn: Txn, port: Port, subnets: list[Subnet], want: FixedIP, index: int) -> FixedIP:
    """Resolve one requested fixed IP (subnet, address, both or neither) and claim it."""
    field = f"fixed_ips[{index}]"
    if want.subnet_id:
        subnet = next((s for s in subnets if s.id == want.subnet_id), None)
        if subnet is None:
            raise InvalidInput(f"subnet {want.subnet_id} is not a subnet of network {port.network_id}",
                               field=f"{field}.subnet_id")
        candidates = [subnet]
    elif want.ip_address:
        candidates = [s for s in subnets if _contains(s, want.ip_address)]
        if not candidates:
            raise InvalidInput(f"{want.ip_address} is not in any subnet of network {port.network_id}",
                               field=f"{field}.ip_address")
    else:
        candidates = sorted(subnets, key=lambda s: s.ip_version)
    if want.ip_address:
        subnet = candidates[0]
        is_router = port.device_owner in ROUTER_OWNERS
        if want.ip_address == subnet.gateway_ip and not is_router:
            raise Conflict(f"{want.ip_address} is the gateway of subnet {subnet.ref()}",
                           field=f"{field}.ip_address")
        allocation.claim_ip(txn, subnet, want.ip_address, f"port {port.id}", f"{field}.ip_address")
        return FixedIP(subnet_id=subnet.id, ip_address=want.ip_address)
    for subnet in candidates:
        ip = allocation.allocate_ip(txn, subnet, f"port {port.id}")
        if ip:
            return FixedIP(subnet_id=subnet.id, ip_address=ip)
    raise Exhausted("no free address left in the allocation pools of "
                    + ", ".join(f"{s.ref()} ({s.cidr})" for s in candidates), field=field)


def _contains(subnet: Subnet, ip: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(ip) in ipaddress.ip_network(subnet.cidr)
