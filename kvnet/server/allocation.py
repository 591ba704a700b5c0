"""Allocation of IPs, MACs and segment ids inside the caller's transaction.

Each allocated value is a key of its own (`/kvnet/alloc/...`). Taking one means `get` (which records
"absent" as a compare) and `put`; two writers racing for the same value cannot both commit, on SQLite
or on etcd. Scans for a free value are untracked so that unrelated allocations never conflict.
"""

from __future__ import annotations

import ipaddress
import random

from kvnet.errors import Conflict, Exhausted, IdTaken, InvalidInput
from kvnet.model.resources import KEY_PREFIX, CloudConfig, Network, Subnet
from kvnet.plan.names import SHORT_ID_LEN, short_id
from kvnet.store.txn import Txn

ALLOC = f"{KEY_PREFIX}alloc/"
MAC_ATTEMPTS = 64
RANDOM_IP_ATTEMPTS = 8


def ip_key(subnet_id: str, ip: str) -> str:
    return f"{ALLOC}ip/{subnet_id}/{ip}"


def mac_key(mac: str) -> str:
    return f"{ALLOC}mac/{mac}"


def segment_key(network_type: str, physnet: str | None, segment: int) -> str:
    return f"{ALLOC}segment/{network_type}/{physnet or '-'}/{segment}"


# -- IPs ------------------------------------------------------------------------------------------
def claim_ip(txn: Txn, subnet: Subnet, ip: str, owner: str, field: str) -> None:
    """Take a specific address of `subnet` for `owner` (a port or floating IP id)."""
    addr = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(subnet.cidr)
    if addr not in net:
        raise InvalidInput(f"{ip} is not in subnet {subnet.ref()} ({subnet.cidr})", field=field)
    if addr in (net.network_address, net.broadcast_address) and net.version == 4:
        raise InvalidInput(f"{ip} is the network or broadcast address of {subnet.cidr}", field=field)
    holder = txn.get(ip_key(subnet.id, ip))
    if holder is not None:
        raise Conflict(f"{ip} is already used by {holder['owner']}", field=field)
    txn.put(ip_key(subnet.id, ip), {"owner": owner})


def allocate_ip(txn: Txn, subnet: Subnet, owner: str, rng: random.Random | None = None) -> str | None:
    """A free address of the subnet's pools, or None when they are full.

    A few random picks first (Neutron does the same): each costs one key lookup, so allocation stays
    O(1) however many ports the subnet has, and concurrent writers rarely pick the same address.
    Only a nearly full pool falls back to scanning the allocated keys for the lowest free one."""
    rng = rng or random.SystemRandom()
    pools = _pool_ranges(subnet)
    size = sum(end - start + 1 for start, end in pools)
    for _ in range(RANDOM_IP_ATTEMPTS if size else 0):
        ip = str(ipaddress.ip_address(_nth_address(pools, rng.randrange(size))))
        if txn.get(ip_key(subnet.id, ip)) is None:
            txn.put(ip_key(subnet.id, ip), {"owner": owner})
            return ip
    taken = {k.rsplit("/", 1)[1] for k in txn.keys(f"{ALLOC}ip/{subnet.id}/")}
    for start, end in pools:
        for value in range(start, end + 1):
            ip = str(ipaddress.ip_address(value))
            if ip not in taken:
                claim_ip(txn, subnet, ip, owner, "fixed_ips")
                return ip
    return None


def _pool_ranges(subnet: Subnet) -> list[tuple[int, int]]:
    return [(int(ipaddress.ip_address(p.start)), int(ipaddress.ip_address(p.end))) for p in subnet.allocation_pools]


def _nth_address(pools: list[tuple[int, int]], index: int) -> int:
    for start, end in pools:
        if index <= end - start:
            return start + index
        index -= end - start + 1
    raise IndexError(index)


def release_ip(txn: Txn, subnet_id: str, ip: str) -> None:
    txn.delete(ip_key(subnet_id, ip))


# -- MACs -----------------------------------------------------------------------------------------
def claim_mac(txn: Txn, mac: str, owner: str) -> None:
    holder = txn.get(mac_key(mac))
    if holder is not None:
        raise Conflict(f"{mac} is already used by {holder['owner']}", field="mac_address")
    txn.put(mac_key(mac), {"owner": owner})


def allocate_mac(txn: Txn, config: CloudConfig, owner: str, rng: random.Random | None = None) -> str:
    """A random locally administered unicast MAC under the cloud's base prefix, unique in the cloud."""
    rng = rng or random.SystemRandom()
    for _ in range(MAC_ATTEMPTS):
        mac = config.base_mac + "".join(f":{rng.randrange(256):02x}" for _ in range(3))
        if txn.get(mac_key(mac)) is None:
            txn.put(mac_key(mac), {"owner": owner})
            return mac
    raise Exhausted(f"no free MAC found under {config.base_mac} after {MAC_ATTEMPTS} attempts",
                    field="mac_address")


def release_mac(txn: Txn, mac: str) -> None:
    txn.delete(mac_key(mac))


# -- segments -------------------------------------------------------------------------------------
def configured_ranges(config: CloudConfig, network: Network) -> list[tuple[int, int]]:
    if network.network_type == "vxlan":
        return config.vxlan_vni_ranges
    if network.network_type == "gre":
        return config.gre_key_ranges
    if network.network_type == "vlan":
        return config.vlan_ranges.get(network.physnet or "", [])
    return []


def claim_segment(txn: Txn, network: Network) -> None:
    """Take the network's segment: its given id, or the first free one from the configured ranges.
    A flat network takes its whole physnet."""
    kind, physnet = network.network_type, network.physnet
    if kind == "local":
        return
    if kind == "flat":
        _take_segment(txn, network, 0, f"physnet {physnet} already carries flat network")
        return
    if network.segmentation_id is not None:
        _take_segment(txn, network, network.segmentation_id,
                      f"{kind} segment {network.segmentation_id} is already used by network")
        return
    config = load_config(txn)
    ranges = configured_ranges(config, network)
    if not ranges:
        raise InvalidInput(f"no {kind} range is configured for physnet {physnet}; give a segmentation_id "
                           "or add vlan_ranges to the cloud config", field="segmentation_id")
    taken = {int(k.rsplit("/", 1)[1]) for k in txn.keys(f"{ALLOC}segment/{kind}/{physnet or '-'}/")}
    for first, last in ranges:
        for segment in range(first, last + 1):
            if segment not in taken:
                network.segmentation_id = segment
                _take_segment(txn, network, segment, "segment raced")
                return
    raise Exhausted(f"every {kind} segment in {ranges} is in use", field="segmentation_id")


def _take_segment(txn: Txn, network: Network, segment: int, message: str) -> None:
    key = segment_key(network.network_type, network.physnet, segment)
    holder = txn.get(key)
    if holder is not None:
        raise Conflict(f"{message} {holder['owner']}", field="segmentation_id"
                       if network.network_type != "flat" else "physnet")
    txn.put(key, {"owner": network.id})


def release_segment(txn: Txn, network: Network) -> None:
    if network.network_type == "local":
        return
    segment = 0 if network.network_type == "flat" else network.segmentation_id
    if segment is not None:
        txn.delete(segment_key(network.network_type, network.physnet, segment))


def load_config(txn: Txn) -> CloudConfig:
    data = txn.get(CloudConfig().key)
    return CloudConfig.model_validate(data) if data else CloudConfig()


# -- ids ------------------------------------------------------------------------------------------
# Kinds whose ids name objects on the hosts: bridges and tunnels (networks), taps and router legs
# (ports), router namespaces (routers). Those names keep only an id's first hex digits.
NAMED_KINDS = ("networks", "ports", "routers")
# A server-picked id whose short form is taken is picked again; each try collides with probability
# (resources of the kind) / 2**40.
ID_ATTEMPTS = 4


def short_id_key(kind: str, rid: str) -> str:
    return f"{ALLOC}shortid/{kind}/{short_id(rid)}"


def claim_short_id(txn: Txn, kind: str, rid: str) -> None:
    """Reserve the id's short form within its kind, so that the device names derived from it are unique
    on every host by construction (two networks sharing them would share a bridge: one tenant's VMs
    on another tenant's segment)."""
    key = short_id_key(kind, rid)
    holder = txn.get(key)
    if holder is not None and holder["owner"] != rid:
        raise IdTaken(f"{rid} starts with the same {SHORT_ID_LEN} hex digits as {kind[:-1]} {holder['owner']}, "
                      "and the names of its devices on the hosts derive from them: choose another id (or leave "
                      "it out)", field="id")
    txn.put(key, {"owner": rid})


def release_short_id(txn: Txn, kind: str, rid: str) -> None:
    key = short_id_key(kind, rid)
    holder = txn.get(key)
    if holder is not None and holder["owner"] == rid:
        txn.delete(key)
