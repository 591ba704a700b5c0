"""The apply plan as a pure function: current resources + desired file -> steps. No server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvnet.apply.plan import State, Step, matches, plan
from kvnet.apply.spec import parse_file, to_api
from kvnet.errors import Conflict, InvalidInput

EXAMPLE = Path(__file__).parents[2] / "examples" / "cloud.yaml"

SMALL = """
project: blue
networks:
  - {name: blue-net, project_id: blue, network_type: vxlan}
subnets:
  - {name: blue-subnet, network: blue-net, cidr: 10.10.0.0/24}
routers:
  - {name: r1, interfaces: [blue-subnet]}
ports:
  - {name: vm1, network: blue-net, fixed_ips: [{subnet: blue-subnet, ip_address: 10.10.0.10}]}
"""


def stored() -> State:
    """What the server holds after SMALL was applied, with the fields the server computes."""
    net = {"id": "n1", "name": "blue-net", "project_id": "blue", "network_type": "vxlan", "segmentation_id": 1001,
           "physnet": None, "mtu": 1450, "external": False, "shared": False}
    subnet = {"id": "s1", "name": "blue-subnet", "project_id": "blue", "network_id": "n1",
              "cidr": "10.10.0.0/24", "gateway_ip": "10.10.0.1", "ip_version": 4,
              "allocation_pools": [{"start": "10.10.0.2", "end": "10.10.0.254"}], "dns_nameservers": []}
    router = {"id": "r1id", "name": "r1", "project_id": "blue", "mode": "centralized",
              "external_gateway": None, "interfaces": [{"subnet_id": "s1", "port_id": "p0"}]}
    router_port = {"id": "p0", "name": "", "network_id": "n1", "device_owner": "network:router_interface",
                   "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.10.0.1"}]}
    port = {"id": "p1", "name": "vm1", "project_id": "blue", "network_id": "n1", "status": "DOWN",
            "mac_address": "fa:6b:76:00:00:01", "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.10.0.10"}]}
    return State({"networks": [net], "subnets": [subnet], "routers": [router], "ports": [router_port, port]},
                 {"id": "cloud", "underlay_mtu": 1500})


def summary(steps: list[Step]) -> list[tuple[str, str, str]]:
    return [(s.mark, s.kind, s.name + (f"/{s.subnet}" if s.subnet else "")) for s in steps]


def test_empty_cloud_creates_everything_in_dependency_order() -> None:
    steps = plan(State(), parse_file(EXAMPLE.read_text()))
    assert summary(steps)[0] == ("~", "config", "cloud")     # config is a singleton: always an update
    assert all(s.mark == "+" for s in steps[1:])
    order = [s.kind if s.action == "create" else s.action for s in steps[1:]]
    first = {k: order.index(k) for k in dict.fromkeys(order)}
    assert first["hosts"] < first["qospolicies"] < first["networks"] < first["subnets"] < first["routers"] \
        < first["add-interface"] < first["ports"] < first["floatingips"]
    assert ("+", "routers", "blue-router/blue-subnet") in summary(steps)
    # blue and red overlap on purpose: two subnets with the same CIDR are two resources
    assert [s.name for s in steps if s.kind == "subnets"] == ["ext-subnet", "blue-subnet", "red-subnet"]
    # a create shows the file's names, not ids that do not exist yet
    port = next(s for s in steps if s.name == "blue-vm1")
    assert port.changes["network"] == (None, "blue-net")


def test_config_step_comes_first_and_only_when_different() -> None:
    desired = parse_file("config: {underlay_mtu: 9000}\nhosts: [{name: h1, tunnel_ip: 192.0.2.1}]")
    steps = plan(State(config={"underlay_mtu": 1500}), desired)
    assert summary(steps)[0] == ("~", "config", "cloud")
    assert steps[0].changes == {"underlay_mtu": (1500, 9000)}
    assert [s.kind for s in plan(State(config={"underlay_mtu": 9000}), desired)] == ["hosts"]


def test_matching_state_gives_no_steps() -> None:
    assert plan(stored(), parse_file(SMALL)) == []


def test_server_computed_and_omitted_fields_never_count() -> None:
    state = stored()
    state.resources["networks"][0]["mtu"] = 1400          # file says nothing about mtu
    state.resources["ports"][1]["status"] = "ACTIVE"
    assert plan(state, parse_file(SMALL)) == []


def test_changed_field_is_an_update_of_that_field_only() -> None:
    desired = parse_file(SMALL.replace("network_type: vxlan}", "network_type: vxlan, mtu: 1400, shared: true}"))
    steps = plan(stored(), desired)
    assert summary(steps) == [("~", "networks", "blue-net")]
    assert steps[0].rid == "n1"
    assert steps[0].changes == {"mtu": (1450, 1400), "shared": (False, True)}


def test_values_are_compared_in_canonical_form() -> None:
    desired = parse_file(SMALL.replace("cidr: 10.10.0.0/24}", "cidr: 10.10.0.0/24, gateway_ip: 10.10.0.1}"))
    assert plan(stored(), desired) == []
    moved = parse_file(SMALL.replace("ip_address: 10.10.0.10", "ip_address: 10.10.0.11"))
    steps = plan(stored(), moved)
    assert summary(steps) == [("~", "ports", "vm1")]
    assert list(steps[0].changes) == ["fixed_ips"]


def test_reference_to_a_resource_created_in_the_same_run_is_a_create() -> None:
    state = stored()
    del state.resources["networks"]
    state.resources["subnets"] = []
    steps = plan(state, parse_file(SMALL))
    assert ("+", "networks", "blue-net") in summary(steps)
    assert ("+", "subnets", "blue-subnet") in summary(steps)
    # vm1 exists but on a network the server does not know by that name: the plan says update
    assert ("~", "ports", "vm1") in summary(steps)
    # and the interface on the new subnet is (re)added; the old one on s1 is removed
    assert ("+", "routers", "r1/blue-subnet") in summary(steps)
    assert ("-", "routers", "r1/s1") in summary(steps)


def test_router_interfaces_are_reconciled() -> None:
    state = stored()
    state.resources["subnets"].append({**state.resources["subnets"][0], "id": "s2", "name": "other"})
    state.resources["routers"][0]["interfaces"].append({"subnet_id": "s2", "port_id": "p9"})
    steps = plan(state, parse_file(SMALL))
    assert summary(steps) == [("-", "routers", "r1/other")]
    assert steps[0].subnet_id == "s2"


def test_router_without_interfaces_key_leaves_interfaces_alone() -> None:
    desired = parse_file(SMALL.replace("{name: r1, interfaces: [blue-subnet]}", "{name: r1}"))
    state = stored()
    state.resources["routers"][0]["interfaces"] = []
    assert plan(state, desired) == []


def test_prune_deletes_unlisted_named_resources_first_in_reverse_order() -> None:
    state = stored()
    state.resources["networks"].append({"id": "n2", "name": "old-net", "project_id": "blue", "network_type": "vxlan"})
    state.resources["ports"].append({"id": "p2", "name": "old-port", "project_id": "blue", "network_id": "n2"})
    state.resources["ports"].append({"id": "p3", "name": "red-port", "project_id": "red", "network_id": "n9"})
    state.resources["qospolicies"] = [{"id": "q1", "name": "gold", "max_kbps": 1000}]
    desired = parse_file(SMALL + "  - {name: vm2, network: blue-net}\n")
    assert summary(plan(state, desired)) == [("+", "ports", "vm2")]
    steps = plan(state, desired, prune=True)
    # the unnamed router port is not the file's to delete; qospolicies are not listed in the file at all;
    # project red's port is not the file's either: it speaks for project blue only
    assert summary(steps) == [("-", "ports", "old-port"), ("-", "networks", "old-net"), ("+", "ports", "vm2")]
    assert steps[0].rid == "p2"


def test_prune_of_router_and_subnet_detaches_interfaces_once() -> None:
    desired = parse_file("project: blue\nnetworks: [{name: blue-net, project_id: blue, network_type: vxlan}]\n"
                         "subnets: []\nrouters: []\nports: [{name: vm1, network: blue-net}]")
    steps = plan(stored(), desired, prune=True)
    assert summary(steps) == [("-", "routers", "r1/blue-subnet"), ("-", "routers", "r1"),
                              ("-", "subnets", "blue-subnet")]


def test_unknown_reference_names_the_resource() -> None:
    with pytest.raises(InvalidInput) as err:
        plan(State(), parse_file("subnets: [{name: s, network: nowhere, cidr: 10.0.0.0/24}]"))
    assert err.value.field == "subnets[s]"
    assert "'nowhere'" in err.value.message


def test_invalid_field_is_reported_with_its_path() -> None:
    with pytest.raises(InvalidInput) as err:
        plan(State(), parse_file("networks: [{name: n, network_type: vxlan, physnet: p1}]"))
    assert err.value.field == "networks[n].physnet"


def test_ambiguous_names_on_the_server_stop_the_plan() -> None:
    state = State({"networks": [{"id": "a", "name": "dup"}, {"id": "b", "name": "dup"}]})
    with pytest.raises(Conflict):
        plan(state, parse_file("networks: [{name: dup}]"))


@pytest.mark.parametrize(("text", "field"), [
    ("widgets: []", "widgets"),
    ("networks: [{network_type: vxlan}]", "networks[0].name"),
    ("networks: [{name: a}, {name: a}]", "networks[1].name"),
    ("networks: {name: a}", "networks"),
    ("- a", "file"),
    ("networks: [", "file"),
])
def test_file_errors(text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_file(text)
    assert err.value.field == field


def test_to_api_translates_references() -> None:
    entry: dict[str, Any] = {"name": "vm1", "network": "blue-net", "host": "h2", "security_groups": ["web"],
                             "fixed_ips": [{"subnet": "blue-subnet", "ip_address": "10.10.0.10"}]}
    body = to_api("ports", entry, lambda kind, name: f"{kind}/{name}")
    assert body == {"name": "vm1", "network_id": "networks/blue-net", "binding_host": "hosts/h2",
                    "security_group_ids": ["securitygroups/web"],
                    "fixed_ips": [{"subnet_id": "subnets/blue-subnet", "ip_address": "10.10.0.10"}]}
    assert "network" in entry  # the file entry is not modified
    router = to_api("routers", {"name": "r", "gateway": "ext", "interfaces": ["s"]}, lambda k, n: n.upper())
    assert router == {"name": "r", "external_gateway": {"network_id": "EXT"}}
    assert to_api("routers", {"name": "r", "gateway": None}, lambda k, n: n) == {"name": "r",
                                                                                 "external_gateway": None}


def test_matches_needs_only_the_given_keys() -> None:
    assert matches({"a": 1}, {"a": 1, "b": 2})
    assert matches([{"x": 1}], [{"x": 1, "y": 2}])
    assert not matches([{"x": 1}], [{"x": 1}, {"x": 2}])
    assert not matches({"a": None}, {"a": 3})
    assert matches({"a": None}, {})
    assert not matches({"a": 1}, None)
