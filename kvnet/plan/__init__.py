"""The plan contract between the agent and the drivers: what one host's dataplane should contain.

The agent compiles it (`kvnet.agent.compile`, pure); every driver (`kvnet.dataplane.linux`,
`kvnet.dataplane.ovs`) imports it and nothing of the agent, so the dataplane depends on the contract only.
"""

from kvnet.plan.host import HostPlan, NameConflict, NetworkPlan, PortPlan, RemoteEndpoint
from kvnet.plan.names import (
    ALIAS_PREFIX,
    NAME_PREFIX,
    SHORT_ID_LEN,
    VXLAN_UDP_PORT,
    bridge_name,
    port_device_name,
    short_id,
    tunnel_name,
)
from kvnet.plan.routing import (
    MARK_HAIRPIN,
    SNAT_NEXT_HOP,
    FloatingIPNat,
    NeighSpec,
    RouterLeg,
    RouterPlan,
    RouteSpec,
    RuleSpec,
)

__all__ = [
    "ALIAS_PREFIX", "MARK_HAIRPIN", "NAME_PREFIX", "SHORT_ID_LEN", "SNAT_NEXT_HOP", "VXLAN_UDP_PORT",
    "FloatingIPNat", "HostPlan", "NameConflict", "NeighSpec", "NetworkPlan", "PortPlan", "RemoteEndpoint", "RouteSpec",
    "RouterLeg", "RouterPlan", "RuleSpec", "bridge_name", "port_device_name", "short_id", "tunnel_name",
]
