"""Every validation rule of the foundation issue, through the real HTTP API, with the exact error.

Each case also checks that nothing was stored: the store revision does not move on a rejected write.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvnet.client import Client
from kvnet.errors import Conflict, InvalidInput, KvnetError, NotFound


@pytest.fixture
def net(client: Client) -> dict[str, Any]:
    client.create("hosts", {"name": "h1", "tunnel_ip": "192.0.2.1"})
    network = client.create("networks", {"name": "blue"})
    client.create("subnets", {"name": "blue-sub", "network_id": network["id"], "cidr": "10.0.0.0/24"})
    return network


def rejected(client: Client, exc: type[KvnetError], call: Any, field: str, message: str) -> None:
    before = client.health()["revision"]
    with pytest.raises(exc) as info:
        call()
    assert info.value.field == field
    assert message in info.value.message, info.value.message
    assert client.health()["revision"] == before, "a rejected write must store nothing"


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"cidr": "10.1.0.300/24"}, "cidr", "is not a CIDR"),
    ({"cidr": "10.1.0.1/24"}, "cidr", "has host bits set (did you mean 10.1.0.0/24?)"),
    ({"cidr": "10.0.0.128/25"}, "cidr", "overlaps subnet blue-sub (10.0.0.0/24) of the same network"),
    ({"cidr": "10.2.0.0/24", "gateway_ip": "10.3.0.1"}, "gateway_ip",
     "10.3.0.1 is not a usable address of 10.2.0.0/24"),
    ({"cidr": "10.2.0.0/24", "allocation_pools": [{"start": "10.2.0.10", "end": "10.2.1.5"}]},
     "allocation_pools[0]", "is not within 10.2.0.0/24"),
])
def test_subnet_rules(client: Client, net: dict[str, Any], body: dict[str, Any], field: str, message: str) -> None:
    rejected(client, InvalidInput, lambda: client.create("subnets", {"network_id": net["id"], **body}), field, message)


def test_same_cidr_in_another_network_is_fine(client: Client, net: dict[str, Any]) -> None:
    red = client.create("networks", {"name": "red", "project_id": "red"})
    assert client.create("subnets", {"network_id": red["id"], "cidr": "10.0.0.0/24"})["cidr"] == "10.0.0.0/24"


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"network_type": "vlan", "physnet": "p1", "segmentation_id": 0}, "segmentation_id", "VLAN id 0 is outside 1-4094"),
    ({"network_type": "vlan", "physnet": "p1", "segmentation_id": 4095}, "segmentation_id",
     "VLAN id 4095 is outside 1-4094"),
    ({"network_type": "vxlan", "segmentation_id": 16777216}, "segmentation_id", "VNI 16777216 is outside 1-16777215"),
    ({"network_type": "vlan"}, "physnet", "a vlan network needs a physnet"),
    ({"network_type": "vxlan", "mtu": 1500}, "mtu", "VXLAN needs 50 bytes of headroom over the underlay MTU 1500, "
     "so at most 1450"),
    ({"network_type": "gre", "mtu": 1460}, "mtu", "GRE needs 42 bytes of headroom over the underlay MTU 1500, "
     "so at most 1458"),
    ({"network_type": "vxlan", "bogus": 1}, "bogus", "is not a known field"),
    ({"network_type": "token-ring"}, "network_type", "Input should be"),
])
def test_network_rules(client: Client, body: dict[str, Any], field: str, message: str) -> None:
    rejected(client, InvalidInput, lambda: client.create("networks", body), field, message)


def test_mtu_is_derived_from_underlay_and_encapsulation(client: Client) -> None:
    assert client.create("networks", {"network_type": "vxlan"})["mtu"] == 1450
    assert client.create("networks", {"network_type": "gre"})["mtu"] == 1458
    assert client.create("networks", {"network_type": "flat", "physnet": "p1"})["mtu"] == 1500
    client.set_config({"underlay_mtu": 9000})
    assert client.create("networks", {"network_type": "vxlan"})["mtu"] == 8950


def test_segment_already_in_use(client: Client) -> None:
    client.create("networks", {"network_type": "vxlan", "segmentation_id": 5000})
    rejected(client, Conflict, lambda: client.create("networks", {"network_type": "vxlan", "segmentation_id": 5000}),
             "segmentation_id", "vxlan segment 5000 is already used by network")
    client.create("networks", {"network_type": "flat", "physnet": "p1"})
    rejected(client, Conflict, lambda: client.create("networks", {"network_type": "flat", "physnet": "p1"}),
             "physnet", "physnet p1 already carries flat network")


def test_segments_are_allocated_from_configured_ranges(client: Client) -> None:
    client.set_config({"vxlan_vni_ranges": [[7000, 7001]], "vlan_ranges": {"p1": [[100, 100]]}})
    assert [client.create("networks", {})["segmentation_id"] for _ in range(2)] == [7000, 7001]
    rejected(client, Conflict, lambda: client.create("networks", {}), "segmentation_id", "is in use")
    assert client.create("networks", {"network_type": "vlan", "physnet": "p1"})["segmentation_id"] == 100
    rejected(client, InvalidInput, lambda: client.create("networks", {"network_type": "vlan", "physnet": "p2"}),
             "segmentation_id", "no vlan range is configured for physnet p2")


@pytest.mark.parametrize(("mac", "message"), [
    ("fa:16:3e:00:00", "is not a MAC address"),
    ("zz:16:3e:00:00:01", "is not a MAC address"),
    ("01:00:5e:00:00:01", "is a multicast MAC address"),
])
def test_mac_rules(client: Client, net: dict[str, Any], mac: str, message: str) -> None:
    rejected(client, InvalidInput, lambda: client.create("ports", {"network_id": net["id"], "mac_address": mac}),
             "mac_address", message)


def test_duplicate_mac(client: Client, net: dict[str, Any]) -> None:
    first = client.create("ports", {"network_id": net["id"], "mac_address": "FA:16:3E:00:00:01"})
    assert first["mac_address"] == "fa:16:3e:00:00:01"
    duplicate = {"network_id": net["id"], "mac_address": "fa:16:3e:00:00:01"}
    rejected(client, Conflict, lambda: client.create("ports", duplicate), "mac_address",
             f"fa:16:3e:00:00:01 is already used by port {first['id']}")


def test_fixed_ip_outside_subnet_or_taken(client: Client, net: dict[str, Any]) -> None:
    rejected(client, InvalidInput,
             lambda: client.create("ports", {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.9.0.5"}]}),
             "fixed_ips[0].ip_address", f"10.9.0.5 is not in any subnet of network {net['id']}")
    subnet = client.list("subnets", network_id=net["id"])[0]
    rejected(client, InvalidInput, lambda: client.create("ports", {
        "network_id": net["id"], "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": "10.9.0.5"}]}),
        "fixed_ips[0].ip_address", "10.9.0.5 is not in subnet blue-sub (10.0.0.0/24)")
    taken = client.create("ports", {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.0.0.50"}]})
    rejected(client, Conflict,
             lambda: client.create("ports", {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.0.0.50"}]}),
             "fixed_ips[0].ip_address", f"10.0.0.50 is already used by port {taken['id']}")
    rejected(client, Conflict,
             lambda: client.create("ports", {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.0.0.1"}]}),
             "fixed_ips[0].ip_address", "10.0.0.1 is the gateway of subnet blue-sub")


def test_released_ip_and_mac_can_be_reused(client: Client, net: dict[str, Any]) -> None:
    port = client.create("ports", {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.0.0.77"}],
                                   "mac_address": "fa:16:3e:00:00:77"})
    client.delete("ports", port["id"])
    again = client.create("ports", {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.0.0.77"}],
                                    "mac_address": "fa:16:3e:00:00:77"})
    assert again["fixed_ips"][0]["ip_address"] == "10.0.0.77"


def test_delete_network_with_ports(client: Client, net: dict[str, Any]) -> None:
    port = client.create("ports", {"network_id": net["id"], "name": "vm1"})
    rejected(client, Conflict, lambda: client.delete("networks", net["id"]), "id",
             "network blue still has 1 port(s): vm1")
    client.delete("ports", port["id"])
    client.delete("networks", net["id"])
    assert client.list("subnets") == []


def test_floating_ip_on_non_external_network(client: Client, net: dict[str, Any]) -> None:
    rejected(client, InvalidInput, lambda: client.create("floatingips", {"floating_network_id": net["id"]}),
             "floating_network_id", "network blue is not external")


def test_unknown_references_name_the_field(client: Client, net: dict[str, Any]) -> None:
    rejected(client, NotFound, lambda: client.create("ports", {"network_id": "nope"}), "network_id",
             "no network with id nope")
    rejected(client, NotFound, lambda: client.create("ports", {"network_id": net["id"], "binding_host": "h9"}),
             "binding_host", "no host with id h9")


def test_server_fields_cannot_be_set(client: Client, net: dict[str, Any]) -> None:
    rejected(client, InvalidInput, lambda: client.create("ports", {"network_id": net["id"], "status": "ACTIVE"}),
             "status", "is set by the server")


def test_http_statuses(client: Client, net: dict[str, Any]) -> None:
    for exc_type, status, call in [
        (InvalidInput, 422, lambda: client.create("networks", {"network_type": "x"})),
        (NotFound, 404, lambda: client.get("networks", "missing")),
        (Conflict, 409, lambda: client.delete("networks", net["id"]) if client.create(
            "ports", {"network_id": net["id"]}) else None),
    ]:
        with pytest.raises(exc_type) as info:
            call()
        assert info.value.status == status


def test_openapi_document_is_served(client: Client) -> None:
    doc = client.request("GET", "/openapi.json")
    assert "/v1/ports" in doc["paths"] and "/v1/watch" in doc["paths"]
