"""`kvnet <kind> create|list|show|update|delete` and the actions, against a real API server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from kvnet.cli.kinds import format_rule, parse_rule
from kvnet.cli.main import app
from kvnet.errors import InvalidInput

runner = CliRunner()


def kvnet(server: Any, *args: str) -> Result:
    return runner.invoke(app, [*args, "--server", server.url])


def ok(server: Any, *args: str) -> Result:
    result = kvnet(server, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def data(server: Any, *args: str) -> Any:
    return json.loads(ok(server, *args, "--json").stdout)


def test_network_subnet_port_lifecycle(api_server: Any) -> None:
    net = data(api_server, "network", "create", "--name", "blue-net", "--project", "blue", "--type", "vxlan",
               "--segment", "5001")
    assert (net["segmentation_id"], net["project_id"], net["mtu"]) == (5001, "blue", 1450)
    subnet = data(api_server, "subnet", "create", "--network", "blue-net", "--cidr", "10.10.0.0/24", "--name",
                  "blue-subnet", "--pool", "10.10.0.10-10.10.0.20", "--dns", "192.0.2.53")
    assert subnet["network_id"] == net["id"]
    assert subnet["allocation_pools"] == [{"start": "10.10.0.10", "end": "10.10.0.20"}]
    assert subnet["dns_nameservers"] == ["192.0.2.53"]
    port = data(api_server, "port", "create", "--network", net["id"], "--name", "vm1",
                "--ip", "subnet=blue-subnet,10.10.0.15", "--mac", "FA:16:3E:00:00:01")
    assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "10.10.0.15"}]
    assert port["mac_address"] == "fa:16:3e:00:00:01"

    listing = ok(api_server, "port", "list").stdout
    assert "vm1" in listing and "blue-net" in listing and "10.10.0.15" in listing and port["id"][:8] in listing
    assert [p["name"] for p in data(api_server, "port", "list")] == ["vm1"]
    assert data(api_server, "port", "show", "vm1")["id"] == port["id"]
    assert "fa:16:3e:00:00:01" in ok(api_server, "port", "show", port["id"]).stdout

    assert "deleted port vm1" in ok(api_server, "port", "delete", "vm1").stdout
    assert data(api_server, "port", "list") == []
    ok(api_server, "subnet", "delete", "blue-subnet")
    ok(api_server, "network", "delete", "blue-net")
    assert data(api_server, "network", "list") == []


def test_kvnet_error_prints_field_and_message_and_exits_1(api_server: Any) -> None:
    ok(api_server, "network", "create", "--name", "n1")
    result = kvnet(api_server, "subnet", "create", "--network", "n1", "--cidr", "10.0.0.1/24")
    assert result.exit_code == 1
    assert "error: cidr: '10.0.0.1/24' has host bits set" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    missing = kvnet(api_server, "port", "show", "nope")
    assert missing.exit_code == 1
    assert "error: name: no port named 'nope'" in missing.stderr


def test_conflicting_options_are_refused(api_server: Any) -> None:
    ok(api_server, "network", "create", "--name", "n1")
    result = kvnet(api_server, "subnet", "create", "--network", "n1", "--cidr", "10.0.0.0/24",
                   "--gateway", "10.0.0.1", "--no-gateway")
    assert result.exit_code == 1
    assert "gateway_ip" in result.stderr
    subnet = data(api_server, "subnet", "create", "--network", "n1", "--cidr", "10.0.0.0/24", "--no-gateway")
    assert subnet["gateway_ip"] is None


def test_update_set_parses_yaml_values(api_server: Any) -> None:
    ok(api_server, "network", "create", "--name", "n1")
    updated = data(api_server, "network", "update", "n1", "--set", "mtu=1400", "--set", "shared=true")
    assert (updated["mtu"], updated["shared"]) == (1400, True)
    result = kvnet(api_server, "network", "update", "n1", "--set", "mtu=99999")
    assert result.exit_code == 1 and result.stderr.startswith("error: mtu: ")


def test_server_from_environment_and_unreachable_server(api_server: Any, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Any) -> None:
    monkeypatch.setenv("KVNET_URL", api_server.url)
    assert runner.invoke(app, ["network", "list", "--json"]).stdout.strip() == "[]"
    gone = f"unix:{tmp_path}/nothing.sock"
    result = runner.invoke(app, ["network", "list", "--server", gone])
    assert result.exit_code == 1
    assert f"cannot reach the kvnet server at {gone}" in result.stderr


def test_hosts_policies_and_groups(api_server: Any) -> None:
    host = data(api_server, "host", "create", "--name", "h1", "--tunnel-ip", "192.0.2.1", "--role", "network",
                "--role", "compute", "--physnet", "physnet-ext=ex0")
    assert (host["id"], host["roles"], host["physnets"]) == ("h1", ["compute", "network"], {"physnet-ext": "ex0"})
    assert kvnet(api_server, "host", "create", "--tunnel-ip", "192.0.2.2").exit_code != 0   # name is required
    qos = data(api_server, "qospolicy", "create", "--name", "bronze", "--max-kbps", "1000", "--burst-kbps", "100")
    group = data(api_server, "securitygroup", "create", "--name", "web", "--rule", "ingress:tcp:80-81:10.0.0.0/8",
                 "--rule", "egress")
    assert [format_rule(r) for r in group["rules"]] == ["ingress:tcp:80-81:10.0.0.0/8", "egress:any::"]
    assert "ingress:tcp:80-81:10.0.0.0/8" in ok(api_server, "securitygroup", "list").stdout
    ok(api_server, "network", "create", "--name", "n1")
    port = data(api_server, "port", "create", "--network", "n1", "--host", "h1", "--qos", "bronze", "--sg", "web")
    assert (port["binding_host"], port["qos_policy_id"], port["security_group_ids"]) == \
        ("h1", qos["id"], [group["id"]])


def test_router_and_floating_ip_actions(api_server: Any) -> None:
    ok(api_server, "network", "create", "--name", "ext", "--type", "flat", "--physnet", "physnet-ext", "--external")
    ok(api_server, "subnet", "create", "--name", "ext-sub", "--network", "ext", "--cidr", "203.0.113.0/24")
    ok(api_server, "network", "create", "--name", "blue")
    ok(api_server, "subnet", "create", "--name", "blue-sub", "--network", "blue", "--cidr", "10.0.0.0/24")
    router = data(api_server, "router", "create", "--name", "r1")
    assert router["external_gateway"] is None
    router = data(api_server, "router", "set-gateway", "r1", "ext")
    assert router["external_gateway"]["ip_address"].startswith("203.0.113.")
    router = data(api_server, "router", "add-interface", "r1", "blue-sub")
    assert len(router["interfaces"]) == 1
    assert "blue-sub" in ok(api_server, "router", "list").stdout

    vm1 = data(api_server, "port", "create", "--name", "vm1", "--network", "blue")
    fip = data(api_server, "floatingip", "create", "--name", "f1", "--network", "ext", "--ip", "203.0.113.50")
    assert fip["port_id"] is None
    fip = data(api_server, "floatingip", "associate", "f1", "vm1")
    assert (fip["status"], fip["router_id"], fip["fixed_ip_address"]) == ("ACTIVE", router["id"],
                                                                       vm1["fixed_ips"][0]["ip_address"])
    assert data(api_server, "floatingip", "disassociate", "f1")["port_id"] is None

    assert data(api_server, "router", "remove-interface", "r1", "blue-sub")["interfaces"] == []
    assert data(api_server, "router", "set-gateway", "r1", "--clear")["external_gateway"] is None
    both = kvnet(api_server, "router", "set-gateway", "r1", "ext", "--clear")
    assert both.exit_code == 1 and "error: network:" in both.stderr


def test_config_show_and_set(api_server: Any) -> None:
    assert data(api_server, "config", "show")["underlay_mtu"] == 1500
    assert data(api_server, "config", "set", "underlay_mtu=9000", "l2_population=false")["underlay_mtu"] == 9000
    assert data(api_server, "config", "show")["l2_population"] is False
    assert "underlay_mtu" in ok(api_server, "config", "show").stdout
    bad = kvnet(api_server, "config", "set", "base_mac=01:00:00")
    assert bad.exit_code == 1 and "error: base_mac:" in bad.stderr


@pytest.mark.parametrize(("text", "rule"), [
    ("ingress:tcp:22:0.0.0.0/0", {"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
                                  "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0", "ethertype": "IPv4"}),
    ("ingress:udp:1000-2000", {"direction": "ingress", "protocol": "udp", "port_range_min": 1000,
                               "port_range_max": 2000}),
    ("egress:any::2001:db8::/32", {"direction": "egress", "protocol": "any", "remote_ip_prefix": "2001:db8::/32",
                                   "ethertype": "IPv6"}),
    ("ingress", {"direction": "ingress", "protocol": "any"}),
])
def test_parse_rule(text: str, rule: dict[str, Any]) -> None:
    assert parse_rule(text) == rule


def test_parse_rule_rejects_bad_ports() -> None:
    with pytest.raises(InvalidInput):
        parse_rule("ingress:tcp:ssh")


def test_root_server_option(api_server: Any) -> None:
    import typer

    from kvnet.cli import resources
    from kvnet.cli.common import root_options

    root = typer.Typer()
    root.callback()(root_options)
    resources.register(root)
    result = runner.invoke(root, ["--server", api_server.url, "qospolicy", "create", "--name", "q", "--max-kbps",
                                  "8", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["max_kbps"] == 8
    assert runner.invoke(root, ["--server", "unix:/nonexistent/kvnet.sock", "qospolicy", "list"]).exit_code == 1
