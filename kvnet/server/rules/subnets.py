"""Subnets: no overlap inside a network, gateway and pools inside the CIDR (checked by the model)."""

from __future__ import annotations

import ipaddress

from kvnet.errors import Conflict, InvalidInput
from kvnet.model.resources import MIN_MTU_V6, Network, Subnet
from kvnet.server.rules.common import immutable, load, load_all, ports_of_network
from kvnet.store.txn import Txn


def create(txn: Txn, subnet: Subnet) -> None:
    network = load(txn, Network, subnet.network_id, field="network_id")
    if subnet.ip_version == 6 and (network.mtu or 0) < MIN_MTU_V6:
        raise InvalidInput(f"network MTU {network.mtu} is below IPv6's minimum {MIN_MTU_V6}", field="cidr")
    cidr = ipaddress.ip_network(subnet.cidr)
    for other in load_all(txn, Subnet):
        if other.network_id == subnet.network_id and other.id != subnet.id \
                and cidr.overlaps(ipaddress.ip_network(other.cidr)):
            raise InvalidInput(f"{subnet.cidr} overlaps subnet {other.ref()} ({other.cidr}) of the same network",
                               field="cidr")


def update(txn: Txn, old: Subnet, new: Subnet) -> None:
    immutable(old, new, "network_id", "cidr")
    if new.gateway_ip != old.gateway_ip or new.allocation_pools != old.allocation_pools:
        _check_not_in_use(txn, old, "gateway_ip")


def delete(txn: Txn, subnet: Subnet) -> None:
    _check_not_in_use(txn, subnet, "id")


def _check_not_in_use(txn: Txn, subnet: Subnet, field: str) -> None:
    users = [p for p in ports_of_network(txn, subnet.network_id)
             if any(f.subnet_id == subnet.id for f in p.fixed_ips)]
    if users:
        raise Conflict(f"subnet {subnet.ref()} still has {len(users)} port(s) with addresses in it: "
                       + ", ".join(p.name or p.id for p in users[:5]), field=field)
