"""render(plan) -> the OVSDB rows one HostPlan needs, and each network's local VLAN. Pure: no I/O.

- `kv-int`, the integration bridge: one Port per VM port (tag = the network's local VLAN), one
  flow-based tunnel port per tunnel type in use (`kv-vxlan`, `kv-gre`: remote_ip=flow, key=flow, so
  one port serves every remote host and every VNI/key), one patch port per physnet bridge.
- `kvp-<nic>`, one physical bridge per physnet interface used by a flat or vlan network: the NIC and
  the patch towards kv-int. Provider VLAN <-> local VLAN translation happens there (see flows.py).

Local VLANs (1..4094) are per host and only meaningful inside kv-int. They must survive agent
restarts (a renumbering would rewrite every flow), so an existing network keeps the tag its ports
carry in OVSDB and only new networks get the lowest free number.
"""

from __future__ import annotations

from collections.abc import Mapping

from kvnet.dataplane.ovs.state import (
    INT_BRIDGE,
    TUNNEL_PORTS,
    Bridge,
    DesiredDb,
    Port,
    int_patch,
    owned_ids,
    phys_patch,
    physnet_bridge,
)
from kvnet.plan import VXLAN_UDP_PORT, HostPlan

PHYSNET_TYPES = ("flat", "vlan")
MAX_LVID = 4094


def assign_lvids(plan: HostPlan, current: Mapping[str, int]) -> dict[str, int]:
    """network id -> local VLAN: keep `current` ones for networks still planned, number new ones."""
    wanted = [n.network_id for n in plan.networks]
    lvids = {net: current[net] for net in wanted if net in current}
    taken = set(lvids.values())
    free = (v for v in range(1, MAX_LVID + 1) if v not in taken)
    for net in wanted:
        if net not in lvids:
            lvids[net] = next(free)
    return lvids


def render_db(plan: HostPlan, lvids: Mapping[str, int], datapath_type: str) -> DesiredDb:
    db = DesiredDb()
    if not plan.networks:
        return db  # nothing on this host: no bridge either
    db.bridges[INT_BRIDGE] = Bridge(INT_BRIDGE, datapath_type, owned_ids("bridge", INT_BRIDGE))
    for kind in sorted({n.network_type for n in plan.networks} & set(TUNNEL_PORTS)):
        options = [("key", "flow"), ("remote_ip", "flow")]
        if plan.tunnel_ip:
            options.append(("local_ip", plan.tunnel_ip))
        if kind == "vxlan":
            options.append(("dst_port", str(VXLAN_UDP_PORT)))
        name = TUNNEL_PORTS[kind]
        db.ports[name] = Port(name, INT_BRIDGE, kind, tuple(sorted(options)), external_ids=owned_ids("tunnel", kind))
    for net in plan.networks:
        if net.network_type in PHYSNET_TYPES and net.physnet_interface:
            _render_physnet(db, net.physnet_interface, datapath_type)
        elif net.network_type not in TUNNEL_PORTS or net.segmentation_id is None:
            db.unsupported.append(net.network_id)
    for port in plan.ports:
        if port.network_id in lvids:
            db.ports[port.device] = Port(port.device, INT_BRIDGE, tag=lvids[port.network_id],
                                         external_ids=(*owned_ids("port", port.port_id),
                                                       ("kvnet-network", port.network_id)),
                                         mtu_request=port.mtu)
    return db


def _render_physnet(db: DesiredDb, nic: str, datapath_type: str) -> None:
    bridge = physnet_bridge(nic)
    db.bridges[bridge] = Bridge(bridge, datapath_type, owned_ids("bridge", bridge))
    db.ports[nic] = Port(nic, bridge, external_ids=owned_ids("physnet-nic", nic))
    db.ports[phys_patch(nic)] = Port(phys_patch(nic), bridge, "patch", (("peer", int_patch(nic)),),
                                     external_ids=owned_ids("patch", nic))
    db.ports[int_patch(nic)] = Port(int_patch(nic), INT_BRIDGE, "patch", (("peer", phys_patch(nic)),),
                                    external_ids=owned_ids("patch", nic))
