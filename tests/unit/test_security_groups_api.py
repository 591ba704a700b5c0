"""Security groups and port security through the API: Neutron's semantics (issue #14, item 1)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from kvnet.cli.main import app
from kvnet.client import Client
from kvnet.errors import Conflict, InvalidInput, KvnetError, NotFound


@pytest.fixture
def net(client: Client) -> dict[str, Any]:
    network = client.create("networks", {"name": "blue", "project_id": "blue"})
    client.create("subnets", {"network_id": network["id"], "cidr": "10.0.0.0/24", "project_id": "blue"})
    return network


def default_group(client: Client, project: str) -> dict[str, Any]:
    return client.find("securitygroups", "default", project=project)


def rejected(client: Client, exc: type[KvnetError], call: Any, field: str, message: str) -> None:
    before = client.health()["revision"]
    with pytest.raises(exc) as info:
        call()
    assert info.value.field == field, info.value
    assert message in info.value.message, info.value.message
    assert client.health()["revision"] == before


def test_a_projects_first_network_makes_its_default_group(client: Client, net: dict[str, Any]) -> None:
    group = default_group(client, "blue")
    rules = {(r["direction"], r["ethertype"], r["remote_group_id"]) for r in group["rules"]}
    assert rules == {("ingress", "IPv4", group["id"]), ("ingress", "IPv6", group["id"]),
                     ("egress", "IPv4", None), ("egress", "IPv6", None)}
    assert all(r["id"] for r in group["rules"])
    client.create("networks", {"name": "blue2", "project_id": "blue"})
    assert [g["name"] for g in client.list("securitygroups", project_id="blue")] == ["default"]


def test_ports_get_the_default_group_unless_they_say(client: Client, net: dict[str, Any]) -> None:
    group = default_group(client, "blue")
    port = client.create("ports", {"network_id": net["id"], "project_id": "blue"})
    assert port["port_security_enabled"] is True and port["security_group_ids"] == [group["id"]]
    bare = client.create("ports", {"network_id": net["id"], "project_id": "blue", "security_group_ids": []})
    assert bare["security_group_ids"] == []  # asked for no group: everything is denied


def test_a_network_without_port_security_gives_its_ports_none(client: Client) -> None:
    network = client.create("networks", {"name": "open", "port_security_enabled": False})
    port = client.create("ports", {"network_id": network["id"]})
    assert port["port_security_enabled"] is False and port["security_group_ids"] == []
    guarded = client.create("ports", {"network_id": network["id"], "port_security_enabled": True})
    assert guarded["security_group_ids"] == [default_group(client, "default")["id"]]


def test_port_security_off_takes_no_groups_and_no_pairs(client: Client, net: dict[str, Any]) -> None:
    group = default_group(client, "blue")
    base = {"network_id": net["id"], "project_id": "blue", "port_security_enabled": False}
    rejected(client, Conflict, lambda: client.create("ports", {**base, "security_group_ids": [group["id"]]}),
             "security_group_ids", "port security is off")
    rejected(client, Conflict, lambda: client.create("ports", {**base, "allowed_address_pairs": [
        {"ip_address": "10.0.0.200"}]}), "allowed_address_pairs", "need port security on")
    port = client.create("ports", {"network_id": net["id"], "project_id": "blue"})
    rejected(client, Conflict, lambda: client.update("ports", port["id"], {"port_security_enabled": False}),
             "security_group_ids", "remove the groups")
    off = client.update("ports", port["id"], {"port_security_enabled": False, "security_group_ids": []})
    assert off["port_security_enabled"] is False


def test_sriov_ports_refuse_groups_saying_why(client: Client) -> None:
    client.create("networks", {"name": "prov", "network_type": "flat", "physnet": "physnet2"})
    prov = client.find("networks", "prov")
    port = client.create("ports", {"network_id": prov["id"], "vnic_type": "direct"})
    assert port["security_group_ids"] == []
    group = default_group(client, "default")
    rejected(client, Conflict, lambda: client.create("ports", {"network_id": prov["id"], "vnic_type": "direct",
                                                              "security_group_ids": [group["id"]]}),
             "security_group_ids", "its VF bypasses the host")


def test_router_ports_have_no_port_security(client: Client, net: dict[str, Any]) -> None:
    router = client.create("routers", {"name": "r", "project_id": "blue"})
    subnet = client.list("subnets")[0]
    client.router_add_interface(router["id"], subnet["id"])
    iface = next(p for p in client.list("ports") if p["device_owner"] == "network:router_interface")
    assert iface["port_security_enabled"] is False and iface["security_group_ids"] == []


def test_a_new_group_allows_all_egress_unless_given_rules(client: Client) -> None:
    web = client.create("securitygroups", {"name": "web"})
    assert {(r["direction"], r["ethertype"]) for r in web["rules"]} == {("egress", "IPv4"), ("egress", "IPv6")}
    ssh = client.create("securitygroups", {"name": "ssh", "rules": [
        {"direction": "ingress", "protocol": "TCP", "port_range_min": 22}]})
    assert [(r["protocol"], r["port_range_min"], r["port_range_max"]) for r in ssh["rules"]] == [("tcp", 22, 22)]


def test_rules_are_added_and_removed_one_by_one(client: Client) -> None:
    group = client.create("securitygroups", {"name": "web", "rules": []})
    rule = client.add_rule(group["id"], {"direction": "ingress", "protocol": 6, "port_range_min": 80,
                                         "port_range_max": 81, "remote_ip_prefix": "192.0.2.7/24"})
    assert rule["protocol"] == "tcp" and rule["remote_ip_prefix"] == "192.0.2.0/24" and rule["id"]
    ping = client.add_rule(group["id"], {"direction": "ingress", "protocol": "icmp", "port_range_min": 8,
                                         "port_range_max": 0})
    assert [r["id"] for r in client.get("securitygroups", group["id"])["rules"]] == [rule["id"], ping["id"]]
    same = {k: v for k, v in rule.items() if k != "id"}
    rejected(client, Conflict, lambda: client.add_rule(group["id"], same), "rule", "the same rule as rules[0]")
    client.remove_rule(group["id"], rule["id"])
    assert [r["id"] for r in client.get("securitygroups", group["id"])["rules"]] == [ping["id"]]
    with pytest.raises(NotFound):
        client.remove_rule(group["id"], rule["id"])


def test_a_group_updated_with_the_same_rules_keeps_their_ids(client: Client) -> None:
    group = client.create("securitygroups", {"name": "web", "rules": [{"direction": "ingress", "protocol": "udp"}]})
    again = client.update("securitygroups", group["id"], {"rules": [
        {"direction": "ingress", "protocol": "udp"}, {"direction": "egress"}]})
    assert again["rules"][0]["id"] == group["rules"][0]["id"]
    assert again["rules"][1]["id"] != group["rules"][0]["id"]


@pytest.mark.parametrize(("rule", "field", "message"), [
    ({"direction": "ingress", "protocol": "carrier-pigeon"}, "protocol", "is not a protocol kvnet knows"),
    ({"direction": "ingress", "protocol": 300}, "protocol", "outside 0-255"),
    ({"direction": "ingress", "protocol": "gre", "port_range_min": 1}, "port_range_min", "port ranges apply to"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 0}, "port_range_min", "outside 1-65535"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, "port_range_min",
     "greater than port_range_max"),
    ({"direction": "ingress", "protocol": "icmp", "port_range_max": 0}, "port_range_max", "needs a type"),
    ({"direction": "ingress", "protocol": "icmp", "port_range_min": 256}, "port_range_min", "ICMP type 256"),
    ({"direction": "ingress", "protocol": "icmp", "ethertype": "IPv6"}, "protocol", "use icmpv6"),
    ({"direction": "ingress", "remote_ip_prefix": "2001:db8::/32"}, "remote_ip_prefix", "is not an IPv4 prefix"),
    ({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "x"}, "remote_group_id",
     "not both"),
    ({"direction": "sideways"}, "direction", ""),
])
def test_bad_rules_name_the_field(client: Client, rule: dict[str, Any], field: str, message: str) -> None:
    group = client.create("securitygroups", {"name": "g", "rules": []})
    rejected(client, InvalidInput, lambda: client.add_rule(group["id"], rule), field, message)


def test_groups_in_use_cannot_be_deleted(client: Client, net: dict[str, Any]) -> None:
    web = client.create("securitygroups", {"name": "web", "project_id": "blue"})
    db = client.create("securitygroups", {"name": "db", "project_id": "blue", "rules": [
        {"direction": "ingress", "protocol": "tcp", "port_range_min": 5432, "remote_group_id": web["id"]}]})
    port = client.create("ports", {"name": "vm1", "network_id": net["id"], "project_id": "blue",
                                   "security_group_ids": [web["id"]]})
    rejected(client, Conflict, lambda: client.delete("securitygroups", web["id"]), "id", "used by 1 port(s): vm1")
    client.delete("ports", port["id"])
    rejected(client, Conflict, lambda: client.delete("securitygroups", web["id"]), "id", "remote group of rules of db")
    client.delete("securitygroups", db["id"])
    client.delete("securitygroups", web["id"])


def test_groups_and_remote_groups_stay_within_a_project(client: Client, net: dict[str, Any]) -> None:
    red = client.create("securitygroups", {"name": "red-web", "project_id": "red"})
    rejected(client, InvalidInput, lambda: client.create("ports", {"network_id": net["id"], "project_id": "blue",
                                                                   "security_group_ids": [red["id"]]}),
             "security_group_ids[0]", "belongs to another project")
    body = {"name": "x", "project_id": "blue", "rules": [{"direction": "ingress", "remote_group_id": red["id"]}]}
    rejected(client, InvalidInput, lambda: client.create("securitygroups", body), "rules[0].remote_group_id",
             "another project")


def test_default_is_the_projects_own(client: Client) -> None:
    made = client.create("securitygroups", {"name": "default", "project_id": "green", "rules": [
        {"direction": "egress"}]})  # before the project's first use: it becomes its default group
    network = client.create("networks", {"project_id": "green"})
    port = client.create("ports", {"network_id": network["id"], "project_id": "green"})
    assert port["security_group_ids"] == [made["id"]]
    rejected(client, Conflict, lambda: client.create("securitygroups", {"name": "default", "project_id": "green"}),
             "name", "has its default group already")
    rejected(client, Conflict, lambda: client.update("securitygroups", made["id"], {"name": "other"}),
             "name", "keeps its name")


def test_cli_rule_add_remove_and_port_update(api_server: Any, client: Client, net: dict[str, Any]) -> None:
    runner = CliRunner()
    base = ["--server", api_server.url, "--project", "blue"]
    added = runner.invoke(app, [*base, "securitygroup", "rule", "add", "default", "--direction", "ingress",
                                "--protocol", "tcp", "--port", "22-23", "--remote-ip", "0.0.0.0/0", "--json"])
    assert added.exit_code == 0, added.stderr
    group = default_group(client, "blue")
    rule = next(r for r in group["rules"] if r["protocol"] == "tcp")
    assert (rule["port_range_min"], rule["port_range_max"], rule["remote_ip_prefix"]) == (22, 23, "0.0.0.0/0")
    removed = runner.invoke(app, [*base, "securitygroup", "rule", "remove", "default", rule["id"]])
    assert removed.exit_code == 0, removed.stderr
    assert all(r["id"] != rule["id"] for r in default_group(client, "blue")["rules"])

    client.create("ports", {"name": "vm1", "network_id": net["id"], "project_id": "blue"})
    off = runner.invoke(app, [*base, "port", "update", "vm1", "--no-port-security", "--no-security-groups"])
    assert off.exit_code == 0, off.stderr
    on = runner.invoke(app, [*base, "port", "update", "vm1", "--port-security", "--sg", "default",
                             "--allowed-address-pair", "10.0.0.200,fa:16:3e:00:00:09", "--json"])
    assert on.exit_code == 0, on.stderr
    port = client.find("ports", "vm1", project="blue")
    assert port["port_security_enabled"] and port["security_group_ids"] == [group["id"]]
    assert port["allowed_address_pairs"] == [{"ip_address": "10.0.0.200/32", "mac_address": "fa:16:3e:00:00:09"}]


def test_every_network_has_its_own_conntrack_zone_for_life(client: Client, cloud: Any) -> None:
    """Two tenants with the same CIDR never share connection tracking: a zone per network, cloud-wide."""
    nets = [client.create("networks", {"name": f"n{i}", "project_id": f"p{i % 2}"}) for i in range(20)]
    zones = [n["ct_zone"] for n in nets]
    assert len(set(zones)) == 20 and all(1 <= z <= 65535 for z in zones)
    assert client.update("networks", nets[0]["id"], {"mtu": 1400})["ct_zone"] == zones[0]
    rejected(client, InvalidInput, lambda: client.update("networks", nets[1]["id"], {"ct_zone": 5}), "ct_zone",
             "is set by the server")
    client.delete("networks", nets[0]["id"])
    assert set(cloud.store.keys("/kvnet/alloc/ctzone/")) == {f"/kvnet/alloc/ctzone/{z}" for z in zones[1:]}
