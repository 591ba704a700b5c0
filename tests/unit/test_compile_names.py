"""compile_host refuses what it cannot program safely: names that collide on the host, and a host the
model does not know (pure, no root)."""

from __future__ import annotations

import pytest

from kvnet.agent.compile import UnknownHost, compile_host
from kvnet.agent.model import CloudModel
from kvnet.model.resources import CloudConfig, FixedIP, Host, Network, Port, Resource, Router, RouterInterface, Subnet
from kvnet.plan import bridge_name, port_device_name

H1 = Host(name="h1", tunnel_ip="192.0.2.1")
# Two networks whose ids share their first 10 hex digits: both would be kvb-0123456789.
NET_X = "01234567-89aa-4000-8000-000000000001"
NET_Y = "01234567-89bb-4000-8000-000000000002"
NET_Z = "fedcba98-7654-4000-8000-000000000003"


def port(pid: str, net: str, mac: str, host: str = "h1") -> Port:
    return Port(id=pid, network_id=net, mac_address=mac, binding_host=host)


def model(*resources: Resource) -> CloudModel:
    return CloudModel.from_resources([CloudConfig(), H1, *resources])


def test_two_networks_whose_names_collide_are_both_refused_and_their_ports_named() -> None:
    nets = [Network(id=i, segmentation_id=100 + n) for n, i in enumerate((NET_X, NET_Y, NET_Z))]
    ports = [port("aaaaaaaa-0000-4000-8000-00000000000a", NET_X, "fa:16:3e:00:00:0a"),
             port("bbbbbbbb-0000-4000-8000-00000000000b", NET_Y, "fa:16:3e:00:00:0b"),
             port("cccccccc-0000-4000-8000-00000000000c", NET_Z, "fa:16:3e:00:00:0c")]
    plan = compile_host("h1", model(*nets, *ports))
    assert bridge_name(NET_X) == bridge_name(NET_Y)
    assert [n.network_id for n in plan.networks] == [NET_Z]  # the unrelated network is untouched
    assert [p.port_id for p in plan.ports] == [ports[2].id]
    (conflict,) = plan.conflicts
    assert (conflict.kind, conflict.name, conflict.resource_ids) == ("bridge", bridge_name(NET_X), (NET_X, NET_Y))
    assert conflict.port_ids == (ports[0].id, ports[1].id)
    assert NET_X in conflict.message and NET_Y in conflict.message and "kvb-0123456789" in conflict.message


def test_two_ports_whose_taps_collide_are_both_refused() -> None:
    a = port("12345678-90aa-4000-8000-00000000000a", NET_Z, "fa:16:3e:00:00:0a")
    b = port("12345678-90bb-4000-8000-00000000000b", NET_Z, "fa:16:3e:00:00:0b")
    ok = port("99999999-0000-4000-8000-00000000000c", NET_Z, "fa:16:3e:00:00:0c")
    plan = compile_host("h1", model(Network(id=NET_Z, segmentation_id=100), a, b, ok))
    assert [p.port_id for p in plan.ports] == [ok.id]
    (conflict,) = plan.conflicts
    assert (conflict.kind, conflict.name, conflict.port_ids) == ("tap", port_device_name(a.id), (a.id, b.id))


def test_two_routers_whose_namespaces_collide_are_both_refused_with_their_legs() -> None:
    net = Network(id=NET_Z, segmentation_id=100)
    sub = Subnet(id="sub", network_id=NET_Z, cidr="10.0.0.0/24", gateway_ip="10.0.0.1")
    vm = port("99999999-0000-4000-8000-00000000000c", NET_Z, "fa:16:3e:00:00:0c").model_copy(
        update={"fixed_ips": [FixedIP(subnet_id="sub", ip_address="10.0.0.10")]})
    legs, routers = [], []
    for n, rid in enumerate(("abcdef01-23aa-4000-8000-000000000001", "abcdef01-23bb-4000-8000-000000000002")):
        legs.append(Port(id=f"{n}eeeeeee-0000-4000-8000-000000000001", network_id=NET_Z, device_id=rid,
                         mac_address=f"fa:16:3e:00:01:0{n}", device_owner="network:router_interface",
                         fixed_ips=[FixedIP(subnet_id="sub", ip_address=f"10.0.0.{n + 1}")]))
        routers.append(Router(id=rid, mode="distributed",
                              interfaces=[RouterInterface(subnet_id="sub", port_id=legs[-1].id)]))
    alone = compile_host("h1", model(net, sub, vm, legs[0], routers[0]))
    assert len(alone.routers) == 1 and alone.conflicts == ()
    plan = compile_host("h1", model(net, sub, vm, *legs, *routers))
    assert plan.routers == ()
    assert [p.port_id for p in plan.ports] == [vm.id]  # the VM keeps its network
    (conflict,) = plan.conflicts
    assert conflict.kind == "router_ns" and conflict.resource_ids == tuple(r.id for r in routers)
    assert conflict.port_ids == tuple(sorted(leg.id for leg in legs))


def test_a_host_the_model_does_not_know_gets_no_plan_at_all() -> None:
    with pytest.raises(UnknownHost, match="no host named 'h9'"):
        compile_host("h9", model(Network(id=NET_Z, segmentation_id=100)))
