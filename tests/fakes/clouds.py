"""Small generated clouds for the fake-kernel property tests (test support).

Three hosts (h1 the network node; every host has the external physnet on `ex0`), 1-3 VXLAN networks with
a subnet each, VM ports on any host in 0-2 of 3 security groups (or without port security), and
optionally one router, centralized or distributed, with interfaces, a gateway on the flat external
network and floating IPs.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from kvnet.agent.compile import compile_host
from kvnet.agent.model import CloudModel
from kvnet.model.resources import (
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Host,
    Network,
    Port,
    Resource,
    Router,
    RouterInterface,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from kvnet.plan import HostPlan

HOSTS = [Host(name="h1", tunnel_ip="192.0.2.1", roles=["network", "compute"], physnets={"ext": "ex0"}),
         Host(name="h2", tunnel_ip="192.0.2.2", physnets={"ext": "ex0"}),
         Host(name="h3", tunnel_ip="192.0.2.3", physnets={"ext": "ex0"})]


def uid(kind: int, n: int) -> str:
    return f"{kind:02x}{n:06x}00-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Cloud:
    networks: int
    vms: tuple[tuple[int, int], ...]  # (network, host index)
    router: str | None  # centralized | distributed
    interfaces: tuple[int, ...]
    gateway: bool
    fips: tuple[int, ...]  # VM indexes with a floating IP
    rules: tuple[tuple[int, ...], ...] = ((), (), ())  # per security group: indexes into RULES
    vm_groups: tuple[tuple[int, ...], ...] = ()  # per VM: its groups; a VM beyond the list: none
    open_vms: tuple[int, ...] = ()  # VM indexes without port security

    def model(self) -> CloudModel:
        out: list[Resource] = [*HOSTS, Network(id=uid(1, 99), network_type="flat", physnet="ext", external=True),
                               Subnet(id=uid(2, 99), network_id=uid(1, 99), cidr="203.0.113.0/24",
                                      gateway_ip="203.0.113.1")]
        for n in range(self.networks):
            out += [Network(id=uid(1, n), segmentation_id=100 + n, mtu=1450, ct_zone=100 + n),
                    Subnet(id=uid(2, n), network_id=uid(1, n), cidr=f"10.{n}.0.0/24", gateway_ip=f"10.{n}.0.1")]
        out += [SecurityGroup(id=uid(7, g), rules=[rule(r, uid(7, g)) for r in sorted(set(rules))])
                for g, rules in enumerate(self.rules)]
        for i, (net, host) in enumerate(self.vms):
            open_port = i in self.open_vms
            groups = [] if open_port or i >= len(self.vm_groups) else sorted({uid(7, g) for g in self.vm_groups[i]})
            out.append(Port(id=uid(3, i), network_id=uid(1, net), mac_address=f"fa:16:3e:00:01:{i:02x}",
                            binding_host=f"h{host + 1}", port_security_enabled=not open_port,
                            security_group_ids=groups,
                            fixed_ips=[FixedIP(subnet_id=uid(2, net), ip_address=f"10.{net}.0.{10 + i}")]))
        if self.router is None:
            return CloudModel.from_resources(out)
        ifaces = sorted(set(self.interfaces))
        for n in ifaces:
            out.append(Port(id=uid(4, n), network_id=uid(1, n), mac_address=f"fa:16:3e:00:02:{n:02x}",
                            device_id=uid(5, 0), device_owner="network:router_interface",
                            fixed_ips=[FixedIP(subnet_id=uid(2, n), ip_address=f"10.{n}.0.1")]))
        gateway = None
        if self.gateway:
            out.append(Port(id=uid(4, 99), network_id=uid(1, 99), mac_address="fa:16:3e:00:02:99",
                            device_id=uid(5, 0), device_owner="network:router_gateway",
                            fixed_ips=[FixedIP(subnet_id=uid(2, 99), ip_address="203.0.113.5")]))
            gateway = ExternalGateway(network_id=uid(1, 99), port_id=uid(4, 99), ip_address="203.0.113.5")
            for i in sorted(set(self.fips)):
                if i < len(self.vms) and self.vms[i][0] in ifaces:
                    net = self.vms[i][0]
                    out.append(FloatingIP(id=uid(6, i), floating_network_id=uid(1, 99), router_id=uid(5, 0),
                                          floating_ip_address=f"203.0.113.{50 + i}", port_id=uid(3, i),
                                          fixed_ip_address=f"10.{net}.0.{10 + i}"))
        out.append(Router(id=uid(5, 0), mode=self.router, external_gateway=gateway,
                          interfaces=[RouterInterface(subnet_id=uid(2, n), port_id=uid(4, n)) for n in ifaces]))
        return CloudModel.from_resources(out)

    def plan(self, host: str = "h1") -> HostPlan:
        return compile_host(host, self.model())


RULES = (
    {"direction": "egress"},
    {"direction": "ingress", "protocol": "tcp", "port_range_min": 22},
    {"direction": "ingress", "protocol": "tcp", "port_range_min": 20, "port_range_max": 30,
     "remote_ip_prefix": "10.0.0.0/8"},
    {"direction": "ingress", "protocol": "icmp", "port_range_min": 8},
    {"direction": "ingress", "protocol": "udp", "remote_ip_prefix": "192.0.2.0/24"},
    {"direction": "ingress", "remote_group_id": "SELF"},
)


def rule(index: int, group_id: str) -> SecurityGroupRule:
    fields = dict(RULES[index])
    if fields.get("remote_group_id") == "SELF":
        fields["remote_group_id"] = group_id
    return SecurityGroupRule(id=uid(8, index), **fields)  # type: ignore[arg-type]


@st.composite
def clouds(draw: st.DrawFn) -> Cloud:
    networks = draw(st.integers(1, 3))
    vms = tuple(draw(st.lists(st.tuples(st.integers(0, networks - 1), st.integers(0, 2)), max_size=6)))
    router = draw(st.sampled_from([None, "centralized", "distributed"]))
    interfaces = tuple(draw(st.lists(st.integers(0, networks - 1), min_size=1, max_size=3)))
    rule_lists = st.lists(st.integers(0, len(RULES) - 1), max_size=4).map(tuple)
    return Cloud(networks, vms, router, interfaces, draw(st.booleans()),
                 tuple(draw(st.lists(st.integers(0, 5), max_size=3))),
                 rules=tuple(draw(st.lists(rule_lists, min_size=3, max_size=3))),
                 vm_groups=tuple(draw(st.lists(st.lists(st.integers(0, 2), max_size=2).map(tuple), max_size=6))),
                 open_vms=tuple(draw(st.lists(st.integers(0, 5), max_size=2))))
