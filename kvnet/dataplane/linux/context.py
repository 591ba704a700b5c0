"""LinuxPass: what the managers of one Linux reconcile pass share (kvnet.dataplane.manager)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kvnet.dataplane.linux.filter_objects import ObservedFilters
from kvnet.dataplane.linux.router_diff import RouterChanges
from kvnet.dataplane.linux.state import ObservedState
from kvnet.plan import HostPlan
from kvnet.sys.bridge_netlink import BridgeLimits
from kvnet.sys.runner import Runner

# (namespace, [(dev, ip, mac)]) -> errors: the gratuitous ARPs for new floating IPs (kvnet.dataplane.linux.garp)
Announce = Callable[[str, list[tuple[str, str, str]]], list[str]]


@dataclass
class LinuxPass:
    plan: HostPlan
    netns: str | None  # the host namespace (bridges, taps); None: this process's
    runner: Runner
    announce: Announce
    limits: BridgeLimits
    observed: ObservedState | None = None  # the L2 manager's observation, for the pins and the redirects after it
    moved: set[str] = field(default_factory=set)  # devices L2 put on another bridge: their pins went with it
    routed: RouterChanges | None = None  # what the router manager changed, for the announcements
    filters: ObservedFilters | None = None  # the filter tables as the first filter phase left them
    stateless_only: str | None = None  # why bridged frames do not reach the stateful rules (kvnet...stateful)


def ports_by_network(plan: HostPlan) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for port in plan.ports:
        out.setdefault(port.network_id, []).append(port.port_id)
    return {net: tuple(ports) for net, ports in out.items()}


def ports_by_device(plan: HostPlan) -> dict[str, tuple[str, ...]]:
    """Every host device kvnet programs -> the ports it serves: a network's bridge, tunnel and physnet NIC
    serve the network's ports here, a port's tap serves that port."""
    by_net = ports_by_network(plan)
    out: dict[str, tuple[str, ...]] = {}
    for net in plan.networks:
        for device in (net.bridge, net.tunnel, net.physnet_interface):
            if device:
                out[device] = by_net.get(net.network_id, ())
    out.update({port.device: (port.port_id,) for port in plan.ports})
    return out
