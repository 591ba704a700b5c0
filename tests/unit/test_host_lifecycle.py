"""Lifecycle rules that keep a cloud's VMs from being cut off by the control plane (issue #13, item 7):
a host with bound ports cannot be deleted unless drained, port status is taken only from the port's
binding host, and a network still attached to a router says how to detach it."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from kvnet.cli.main import app
from kvnet.client import Client
from kvnet.errors import Conflict


@pytest.fixture
def bound(client: Client) -> dict[str, Any]:
    for name, ip in (("h1", "192.0.2.1"), ("h2", "192.0.2.2")):
        client.create("hosts", {"name": name, "tunnel_ip": ip})
    net = client.create("networks", {"name": "n"})
    client.create("subnets", {"network_id": net["id"], "cidr": "10.0.0.0/24"})
    ports = [client.create("ports", {"name": f"vm{i}", "network_id": net["id"], "binding_host": "h1"})
             for i in range(7)]
    return {"network": net, "ports": ports}


def test_deleting_a_host_with_bound_ports_is_refused_naming_them(client: Client, bound: dict[str, Any]) -> None:
    before = client.health()["revision"]
    with pytest.raises(Conflict) as info:
        client.delete("hosts", "h1")
    message = info.value.message
    assert info.value.status == 409
    assert "7 port(s) bound" in message and "vm0, vm1, vm2, vm3, vm4, ..." in message and "--drain" in message
    assert client.health()["revision"] == before
    client.delete("hosts", "h2")  # nothing bound there


def test_draining_unbinds_the_ports_in_one_write_then_the_host_can_go(client: Client,
                                                                       bound: dict[str, Any]) -> None:
    before = client.health()["revision"]
    result = client.drain_host("h1")
    assert result["unbound_ports"] == 7 and result["revision"] == before + 1
    for port in client.list("ports"):
        assert port["binding_host"] is None and port["status"] == "DOWN"
        assert port["status_detail"] == {"reason": "host h1 was drained"}
    client.delete("hosts", "h1")


def test_cli_host_delete_drain_does_not_wait_for_an_agent_that_never_reported(api_server: Any,
                                                                              bound: dict[str, Any]) -> None:
    runner = CliRunner()
    refused = runner.invoke(app, ["--server", api_server.url, "host", "delete", "h1"])
    assert refused.exit_code == 1 and "--drain" in refused.stderr
    drained = runner.invoke(app, ["--server", api_server.url, "host", "delete", "h1", "--drain"])
    assert drained.exit_code == 0, drained.stderr
    assert "7 port(s) unbound" in drained.stdout and "deleted host h1" in drained.stdout


def test_port_status_is_taken_only_from_the_binding_host(client: Client, bound: dict[str, Any]) -> None:
    port = bound["ports"][0]
    assert client.set_port_status(port["id"], "ACTIVE", {}, host="h1")["status"] == "ACTIVE"
    before = client.health()["revision"]
    with pytest.raises(Conflict) as info:  # the host the VM moved away from, from a stale view
        client.set_port_status(port["id"], "DOWN", {}, host="h2")
    assert info.value.field == "host" and "bound to host h1" in info.value.message
    assert client.health()["revision"] == before
    client.update("ports", port["id"], {"binding_host": "h2"})
    with pytest.raises(Conflict):
        client.set_port_status(port["id"], "ACTIVE", {}, host="h1")
    assert client.set_port_status(port["id"], "ACTIVE", {}, host="h2")["status"] == "ACTIVE"
    client.update("ports", port["id"], {"binding_host": None})
    with pytest.raises(Conflict, match="not bound to any host"):
        client.set_port_status(port["id"], "ACTIVE", {}, host="h2")


def test_deleting_a_network_on_a_router_says_to_remove_the_interface(client: Client) -> None:
    net = client.create("networks", {"name": "n"})
    subnet = client.create("subnets", {"network_id": net["id"], "cidr": "10.0.0.0/24"})
    router = client.create("routers", {"name": "r1"})
    client.router_add_interface(router["id"], subnet["id"])
    with pytest.raises(Conflict) as info:
        client.delete("networks", net["id"])
    assert "kvnet router remove-interface" in info.value.message and router["id"] in info.value.message
    client.router_remove_interface(router["id"], subnet["id"])
    client.delete("networks", net["id"])
