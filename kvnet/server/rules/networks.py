"""Networks: segment allocation and MTU derived from the underlay and the encapsulation."""

from __future__ import annotations

from kvnet.errors import Conflict, InvalidInput
from kvnet.model.resources import ENCAP_OVERHEAD, MIN_MTU_V4, Network, Subnet
from kvnet.server import allocation
from kvnet.server.rules import securitygroups
from kvnet.server.rules.common import immutable, load_all, ports_of_network, remove
from kvnet.store.txn import Txn


def max_mtu(underlay_mtu: int, network_type: str) -> int:
    return underlay_mtu - ENCAP_OVERHEAD.get(network_type, 0)


def _set_mtu(txn: Txn, network: Network) -> None:
    config = allocation.load_config(txn)
    largest = max_mtu(config.underlay_mtu, network.network_type)
    if network.mtu is None:
        network.mtu = largest
    elif network.mtu > largest:
        overhead = ENCAP_OVERHEAD.get(network.network_type)
        why = (f"{network.network_type.upper()} needs {overhead} bytes of headroom over the underlay MTU "
               f"{config.underlay_mtu}" if overhead else f"the underlay MTU is {config.underlay_mtu}")
        raise InvalidInput(f"{network.mtu} is too large for the overlay: {why}, so at most {largest}",
                           field="mtu")
    if network.mtu < MIN_MTU_V4:
        raise InvalidInput(f"{network.mtu} is below the IPv4 minimum of {MIN_MTU_V4}", field="mtu")


def create(txn: Txn, network: Network) -> None:
    allocation.claim_short_id(txn, Network.kind, network.id)
    securitygroups.ensure_default(txn, network.project_id)  # the project's first use, usually
    _set_mtu(txn, network)
    allocation.claim_segment(txn, network)
    allocation.allocate_ct_zone(txn, network)


def update(txn: Txn, old: Network, new: Network) -> None:
    immutable(old, new, "network_type", "physnet", "segmentation_id")
    new.ct_zone = old.ct_zone
    if new.ct_zone is None:  # a network from before zones: it gets one with its next change
        allocation.allocate_ct_zone(txn, new)
    if new.mtu != old.mtu:
        _set_mtu(txn, new)
    if old.external and not new.external:
        from kvnet.model.resources import FloatingIP

        if any(f.floating_network_id == old.id for f in load_all(txn, FloatingIP)):
            raise Conflict("floating IPs still use this network", field="external")


def delete(txn: Txn, network: Network) -> None:
    in_use = ports_of_network(txn, network.id)
    interfaces = [p for p in in_use if p.device_owner == "network:router_interface"]
    if interfaces:
        routers = {p.device_id for p in interfaces}
        raise Conflict(f"network {network.ref()} is attached to {len(routers)} router(s) by "
                       f"{len(interfaces)} interface(s): remove them first (`kvnet router remove-interface "
                       f"<router> <subnet>`; router {', '.join(sorted(routers)[:3])})", field="id")
    if in_use:
        raise Conflict(f"network {network.ref()} still has {len(in_use)} port(s): "
                       + ", ".join(p.name or p.id for p in in_use[:5]), field="id")
    for subnet in load_all(txn, Subnet):
        if subnet.network_id == network.id:
            remove(txn, subnet)
    allocation.release_segment(txn, network)
    allocation.release_ct_zone(txn, network)
    allocation.release_short_id(txn, Network.kind, network.id)
