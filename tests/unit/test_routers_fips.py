"""Routers and floating IPs: router-owned ports, gateway, association rules."""

from __future__ import annotations

from typing import Any

import pytest

from kvnet.client import Client
from kvnet.errors import Conflict, InvalidInput


@pytest.fixture
def topo(client: Client) -> dict[str, Any]:
    ext = client.create("networks", {"name": "ext", "network_type": "flat", "physnet": "physnet-ext",
                                     "external": True})
    client.create("subnets", {"network_id": ext["id"], "cidr": "203.0.113.0/24"})
    net = client.create("networks", {"name": "blue"})
    sub = client.create("subnets", {"network_id": net["id"], "cidr": "10.0.0.0/24"})
    router = client.create("routers", {"name": "r1", "external_gateway": {"network_id": ext["id"]}})
    return {"ext": ext, "net": net, "sub": sub, "router": router}


def test_gateway_and_interface_are_router_ports(client: Client, topo: dict[str, Any]) -> None:
    router = client.router_add_interface(topo["router"]["id"], topo["sub"]["id"])
    iface_port = client.get("ports", router["interfaces"][0]["port_id"])
    assert iface_port["fixed_ips"][0]["ip_address"] == "10.0.0.1"
    assert iface_port["device_owner"] == "network:router_interface"
    gw = client.get("ports", router["external_gateway"]["port_id"])
    assert gw["fixed_ips"][0]["ip_address"] == router["external_gateway"]["ip_address"]
    with pytest.raises(Conflict) as info:
        client.delete("ports", iface_port["id"])
    assert info.value.field == "device_owner"
    with pytest.raises(Conflict):
        client.router_add_interface(topo["router"]["id"], topo["sub"]["id"])
    with pytest.raises(Conflict) as info:
        client.delete("routers", topo["router"]["id"])
    assert "still has 1 interface" in info.value.message
    client.router_remove_interface(topo["router"]["id"], topo["sub"]["id"])
    client.delete("routers", topo["router"]["id"])
    assert client.list("ports") == []


def test_floating_ip_needs_a_router_path(client: Client, topo: dict[str, Any]) -> None:
    port = client.create("ports", {"network_id": topo["net"]["id"]})
    with pytest.raises(InvalidInput) as info:
        client.create("floatingips", {"floating_network_id": topo["ext"]["id"], "port_id": port["id"]})
    assert info.value.field == "port_id" and "no router connects subnet" in info.value.message
    client.router_add_interface(topo["router"]["id"], topo["sub"]["id"])
    fip = client.create("floatingips", {"floating_network_id": topo["ext"]["id"], "port_id": port["id"]})
    assert fip["router_id"] == topo["router"]["id"] and fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    with pytest.raises(Conflict):
        client.router_remove_interface(topo["router"]["id"], topo["sub"]["id"])
    client.delete("ports", port["id"])
    assert client.get("floatingips", fip["id"])["port_id"] is None
    client.delete("floatingips", fip["id"])
    again = client.create("floatingips", {"floating_network_id": topo["ext"]["id"],
                                          "floating_ip_address": fip["floating_ip_address"]})
    assert again["floating_ip_address"] == fip["floating_ip_address"]
