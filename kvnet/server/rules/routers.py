"""Routers: interfaces and the external gateway are router-owned ports (Neutron's model)."""

from __future__ import annotations

import ipaddress

from kvnet.errors import Conflict, InvalidInput, NotFound
from kvnet.model.resources import (
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Network,
    Port,
    Router,
    RouterInterface,
    Subnet,
)
from kvnet.server import allocation
from kvnet.server.rules import ports
from kvnet.server.rules.common import load, load_all, remove, save
from kvnet.store.txn import Txn


def create(txn: Txn, router: Router) -> None:
    allocation.claim_short_id(txn, Router.kind, router.id)
    router.interfaces = []
    if router.external_gateway is not None:
        router.external_gateway = _gateway_port(txn, router, router.external_gateway.network_id)


def update(txn: Txn, old: Router, new: Router) -> None:
    new.interfaces = old.interfaces
    old_net = old.external_gateway.network_id if old.external_gateway else None
    new_net = new.external_gateway.network_id if new.external_gateway else None
    if old_net != new_net:
        if old.external_gateway:
            _drop_gateway(txn, old)
        new.external_gateway = _gateway_port(txn, new, new_net) if new_net else None
    else:
        new.external_gateway = old.external_gateway


def delete(txn: Txn, router: Router) -> None:
    if router.interfaces:
        raise Conflict(f"router {router.ref()} still has {len(router.interfaces)} interface(s); remove them "
                       "first", field="interfaces")
    if router.external_gateway:
        _drop_gateway(txn, router)
    allocation.release_short_id(txn, Router.kind, router.id)


def add_interface(txn: Txn, router: Router, subnet_id: str) -> Router:
    subnet = load(txn, Subnet, subnet_id, field="subnet_id")
    network = load(txn, Network, subnet.network_id)
    if network.external:
        raise InvalidInput(f"subnet {subnet.ref()} is on external network {network.ref()}; set it as the "
                           "router's gateway instead", field="subnet_id")
    if subnet.gateway_ip is None:
        raise InvalidInput(f"subnet {subnet.ref()} has no gateway_ip for the router to take", field="subnet_id")
    for other in load_all(txn, Router):
        if any(i.subnet_id == subnet_id for i in other.interfaces):
            raise Conflict(f"subnet {subnet.ref()} is already attached to router {other.ref()}",
                           field="subnet_id")
    cidr = ipaddress.ip_network(subnet.cidr)
    for iface in router.interfaces:
        attached = load(txn, Subnet, iface.subnet_id)
        if cidr.overlaps(ipaddress.ip_network(attached.cidr)):
            raise InvalidInput(f"{subnet.cidr} overlaps {attached.cidr}, already on router {router.ref()}",
                               field="subnet_id")
    port = ports.create_owned(txn, network_id=network.id, project_id=router.project_id, device_id=router.id,
                              device_owner="network:router_interface",
                              fixed_ips=[FixedIP(subnet_id=subnet.id, ip_address=subnet.gateway_ip)])
    router.interfaces = [*router.interfaces, RouterInterface(subnet_id=subnet.id, port_id=port.id)]
    save(txn, router)
    return router


def remove_interface(txn: Txn, router: Router, subnet_id: str) -> Router:
    iface = next((i for i in router.interfaces if i.subnet_id == subnet_id), None)
    if iface is None:
        raise NotFound(f"router {router.ref()} has no interface on subnet {subnet_id}", field="subnet_id")
    for fip in load_all(txn, FloatingIP):
        if fip.router_id == router.id and fip.port_id and _port_on_subnet(txn, fip.port_id, subnet_id):
            raise Conflict(f"floating IP {fip.floating_ip_address} reaches subnet {subnet_id} through this "
                           "interface; disassociate it first", field="subnet_id")
    port = load(txn, Port, iface.port_id)
    ports.release(txn, port)
    remove(txn, port)
    router.interfaces = [i for i in router.interfaces if i.subnet_id != subnet_id]
    save(txn, router)
    return router


def _port_on_subnet(txn: Txn, port_id: str, subnet_id: str) -> bool:
    data = txn.get(Port(id=port_id, network_id="-").key)
    return bool(data) and any(f.get("subnet_id") == subnet_id for f in data["fixed_ips"])


def _gateway_port(txn: Txn, router: Router, network_id: str) -> ExternalGateway:
    network = load(txn, Network, network_id, field="external_gateway.network_id")
    if not network.external:
        raise InvalidInput(f"network {network.ref()} is not external", field="external_gateway.network_id")
    port = ports.create_owned(txn, network_id=network.id, project_id=router.project_id, device_id=router.id,
                              device_owner="network:router_gateway")
    return ExternalGateway(network_id=network.id, port_id=port.id, ip_address=port.ips()[0] if port.ips()
                           else None)


def _drop_gateway(txn: Txn, router: Router) -> None:
    assert router.external_gateway is not None
    if any(f.router_id == router.id for f in load_all(txn, FloatingIP)):
        raise Conflict(f"floating IPs use router {router.ref()}'s gateway; disassociate them first",
                       field="external_gateway")
    if router.external_gateway.port_id:
        port = load(txn, Port, router.external_gateway.port_id)
        ports.release(txn, port)
        remove(txn, port)
