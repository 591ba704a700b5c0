"""What filters a port: port security and security groups, settled when a port is written (Neutron's
rules, so operators and the OpenStack clients find what they expect).

- Port security not given on create: the network's. Router ports (device_owner network:*) have none.
- Security groups not given on create, for a port with port security on a bridged vNIC: the project's
  `default` group. Groups must exist, in the port's project.
- Port security off: no groups and no allowed address pairs (409): nothing filters such a port.
- SR-IOV (direct, passthrough): no groups (409): its VF bypasses the host, where filters live; the
  source document's v3 isolates VF ports by VLAN only.
"""

from __future__ import annotations

from kvnet.errors import Conflict, InvalidInput
from kvnet.model.resources import Network, Port, SecurityGroup
from kvnet.server.rules.common import load
from kvnet.server.rules.securitygroups import ensure_default
from kvnet.store.txn import Txn

BRIDGED = ("normal", "vhost")


def settle(txn: Txn, port: Port, network: Network, *, creating: bool) -> None:
    given = port.model_fields_set if creating else {"port_security_enabled", "security_group_ids"}
    if port.device_owner.startswith("network:"):
        port.port_security_enabled, port.security_group_ids = False, []
        return
    if "port_security_enabled" not in given:
        port.port_security_enabled = network.port_security_enabled
    if port.vnic_type not in BRIDGED:
        if port.security_group_ids and "security_group_ids" in given:
            raise Conflict(f"a {port.vnic_type} (SR-IOV) port cannot have security groups: its VF bypasses the "
                           "host where they are enforced (isolate it by VLAN instead)", field="security_group_ids")
        port.security_group_ids = []
        return
    if not port.port_security_enabled:
        if port.security_group_ids:
            raise Conflict("port security is off, so no security group can apply: remove the groups "
                           "(security_group_ids: []) or turn port security on", field="security_group_ids")
        if port.allowed_address_pairs:
            raise Conflict("allowed address pairs need port security on (with it off the port may send from "
                           "any address anyway)", field="allowed_address_pairs")
        return
    if "security_group_ids" not in given:
        port.security_group_ids = [ensure_default(txn, port.project_id)]
    if len(set(port.security_group_ids)) != len(port.security_group_ids):
        raise InvalidInput("lists a group twice", field="security_group_ids")
    for i, group_id in enumerate(port.security_group_ids):
        group = load(txn, SecurityGroup, group_id, field=f"security_group_ids[{i}]")
        if group.project_id != port.project_id:
            raise InvalidInput(f"security group {group_id} belongs to another project than the port",
                               field=f"security_group_ids[{i}]")
