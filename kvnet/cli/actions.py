"""Commands that are not plain CRUD: router interfaces and gateway, floating IP association, config,
host delete with drain."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer

from kvnet.cli.common import connected, json_option, parse_assignments, server_option, show
from kvnet.cli.kinds import address_pairs
from kvnet.cli.output import say
from kvnet.client import Client
from kvnet.errors import Conflict, InvalidInput


def router_commands(sub: typer.Typer) -> None:
    @sub.command("add-interface")
    def add_interface(router: str = typer.Argument(..., help="router id or name"),
                      subnet: str = typer.Argument(..., help="subnet id or name"),
                      as_json: bool = json_option(), server: str = server_option()) -> None:
        """Attach a subnet: the router takes the subnet's gateway address."""
        with connected(server) as client:
            rid, sid = client.find("routers", router)["id"], client.find("subnets", subnet)["id"]
            show(client.router_add_interface(rid, sid), as_json)

    @sub.command("remove-interface")
    def remove_interface(router: str = typer.Argument(..., help="router id or name"),
                         subnet: str = typer.Argument(..., help="subnet id or name"),
                         as_json: bool = json_option(), server: str = server_option()) -> None:
        """Detach a subnet."""
        with connected(server) as client:
            rid, sid = client.find("routers", router)["id"], client.find("subnets", subnet)["id"]
            show(client.router_remove_interface(rid, sid), as_json)

    @sub.command("set-gateway")
    def set_gateway(router: str = typer.Argument(..., help="router id or name"),
                    network: str = typer.Argument(None, help="external network id or name"),
                    clear: bool = typer.Option(False, "--clear", help="remove the gateway"),
                    as_json: bool = json_option(), server: str = server_option()) -> None:
        """Give the router a gateway on an external network (or `--clear` it)."""
        with connected(server) as client:
            if bool(network) == clear:
                raise InvalidInput("give either an external network or --clear", field="network")
            gateway = None if clear else {"network_id": client.find("networks", network)["id"]}
            rid = client.find("routers", router)["id"]
            show(client.update("routers", rid, {"external_gateway": gateway}), as_json)


def floatingip_commands(sub: typer.Typer) -> None:
    @sub.command("associate")
    def associate(fip: str = typer.Argument(..., help="floating IP id or name"),
                  port: str = typer.Argument(..., help="port id or name"),
                  fixed_ip: str = typer.Option(None, "--fixed-ip", help="which of the port's addresses"),
                  as_json: bool = json_option(), server: str = server_option()) -> None:
        """Map the floating IP to a port's fixed address."""
        with connected(server) as client:
            changes = {"port_id": client.find("ports", port)["id"], "fixed_ip_address": fixed_ip}
            show(client.update("floatingips", client.find("floatingips", fip)["id"], changes), as_json)

    @sub.command("disassociate")
    def disassociate(fip: str = typer.Argument(..., help="floating IP id or name"),
                     as_json: bool = json_option(), server: str = server_option()) -> None:
        """Unmap the floating IP (it stays allocated)."""
        with connected(server) as client:
            changes = {"port_id": None, "fixed_ip_address": None}
            show(client.update("floatingips", client.find("floatingips", fip)["id"], changes), as_json)


DRAIN_WAIT_S = 35.0  # three heartbeats of a default agent, plus its pass


# Commands a kind has here instead of the generic ones (kvnet.cli.resources).
OWN_COMMANDS: dict[str, set[str]] = {"hosts": {"delete"}, "ports": {"update"}}


def host_commands(sub: typer.Typer) -> None:
    @sub.command("delete")
    def delete(host: str = typer.Argument(..., help="host name"),
               drain: bool = typer.Option(False, "--drain", help="unbind its ports first and wait for its agent "
                                                                 "to remove their objects"),
               server: str = server_option()) -> None:
        """Delete a host. Refused while ports are bound to it, unless --drain."""
        with connected(server) as client:
            if drain:
                drain_host(client, host)
            client.delete("hosts", host)
        say(f"deleted host {host}")

    @sub.command("drain")
    def drain_(host: str = typer.Argument(..., help="host name"), server: str = server_option()) -> None:
        """Unbind every port bound to the host (they go DOWN) and wait for its agent to remove them."""
        with connected(server) as client:
            drain_host(client, host)


def drain_host(client: Client, host: str) -> None:
    """Unbind the host's ports, then wait (with a deadline) until its agent, if it is up, has reconciled
    past the unbinding: its record must still exist then, or the agent keeps what it had."""
    result = client.drain_host(host)
    say(f"host {host}: {result['unbound_ports']} port(s) unbound")
    if not result["unbound_ports"]:
        return
    deadline = time.monotonic() + DRAIN_WAIT_S
    say(f"waiting for the agent of {host} to remove their objects (up to {DRAIN_WAIT_S:.0f}s)", style="dim")
    while True:
        record = client.get("hosts", host)
        agent = record.get("agent") or {}
        if record.get("status") != "up":
            say(f"host {host} is {record.get('status')}: not waiting for its agent", style="yellow")
            return
        if (agent.get("reconciled_revision") or 0) >= result["revision"]:
            return
        if time.monotonic() > deadline:
            raise Conflict(f"the agent of {host} has not reported a pass since the drain (revision "
                           f"{result['revision']}) within {DRAIN_WAIT_S:.0f}s; its ports are unbound, check it "
                           "and delete again", field="host")
        time.sleep(0.5)


def config_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, help="Cloud-wide settings (underlay MTU, segment ranges, base MAC).")

    @app.command("show")
    def config_show(as_json: bool = json_option(), server: str = server_option()) -> None:
        """Show the cloud configuration."""
        with connected(server) as client:
            show(client.config(), as_json)

    @app.command("set")
    def config_set(assignments: list[str] = typer.Argument(..., help="KEY=VALUE, value as YAML"),
                   as_json: bool = json_option(), server: str = server_option()) -> None:
        """Change settings, e.g. `kvnet config set underlay_mtu=9000`."""
        with connected(server) as client:
            show(client.set_config(parse_assignments(assignments)), as_json)

    return app


def port_commands(sub: typer.Typer) -> None:
    from kvnet.cli.sriov import libvirt_xml

    sub.command("libvirt-xml")(libvirt_xml)

    @sub.command("update")
    def update(port: str = typer.Argument(..., help="port id or name"),
               groups: list[str] = typer.Option(None, "--security-group", "--sg",
                                                help="the port's security groups, replacing its list (repeat)"),
               no_groups: bool = typer.Option(False, "--no-security-groups", help="no security group at all"),
               port_security: bool = typer.Option(None, "--port-security/--no-port-security",
                                                  help="filter what the port sends and receives (or not)"),
               pairs: list[str] = typer.Option(None, "--allowed-address-pair",
                                               help="IP or CIDR[,MAC] the port may also send from (repeat; "
                                                    "replaces the list)"),
               no_pairs: bool = typer.Option(False, "--no-allowed-address-pairs", help="no allowed address pair"),
               assignments: list[str] = typer.Option(None, "--set", help="FIELD=VALUE, value as YAML (repeat)"),
               as_json: bool = json_option(), server: str = server_option()) -> None:
        """Change a port: its security groups, port security, allowed address pairs, or any field."""
        with connected(server) as client:
            changes = parse_assignments(assignments or [])
            if groups and no_groups:
                raise InvalidInput("--security-group and --no-security-groups contradict", field="security_group_ids")
            if groups or no_groups:
                changes["security_group_ids"] = [client.find("securitygroups", g)["id"] for g in groups or []]
            if port_security is not None:
                changes["port_security_enabled"] = port_security
            if pairs and no_pairs:
                raise InvalidInput("--allowed-address-pair and --no-allowed-address-pairs contradict",
                                   field="allowed_address_pairs")
            if pairs or no_pairs:
                changes["allowed_address_pairs"] = address_pairs(client, pairs or [])
            if not changes:
                raise InvalidInput("nothing to change", field="port")
            show(client.update("ports", client.find("ports", port)["id"], changes), as_json)


def securitygroup_commands(sub: typer.Typer) -> None:
    rule_app = typer.Typer(no_args_is_help=True, help="Add or remove one rule of a security group.")
    sub.add_typer(rule_app, name="rule")

    @rule_app.command("add")
    def rule_add(group: str = typer.Argument(..., help="security group id or name"),
                 direction: str = typer.Option(..., "--direction", help="ingress or egress"),
                 protocol: str = typer.Option(None, "--protocol",
                                              help="tcp, udp, icmp, icmpv6, sctp, ... or a number (default: any)"),
                 port: str = typer.Option(None, "--port", help="PORT or FIRST-LAST (tcp, udp, sctp...)"),
                 icmp_type: int = typer.Option(None, "--icmp-type", help="ICMP type (icmp, icmpv6)"),
                 icmp_code: int = typer.Option(None, "--icmp-code", help="ICMP code (with --icmp-type)"),
                 remote_ip: str = typer.Option(None, "--remote-ip", help="CIDR the peer is in"),
                 remote_group: str = typer.Option(None, "--remote-group", help="group whose ports the peer is"),
                 ethertype: str = typer.Option(None, "--ethertype", help="IPv4 or IPv6 (default: from --remote-ip, "
                                                                         "else IPv4)"),
                 description: str = typer.Option(None, "--description"),
                 as_json: bool = json_option(), server: str = server_option()) -> None:
        """Add a rule, e.g. `--direction ingress --protocol tcp --port 22 --remote-ip 0.0.0.0/0`."""
        with connected(server) as client:
            rule: dict[str, Any] = {"direction": direction}
            if protocol is not None:
                rule["protocol"] = protocol
            if port is not None and icmp_type is not None:
                raise InvalidInput("--port is for tcp/udp, --icmp-type for icmp: not both", field="port")
            if port is not None:
                rule["port_range_min"], rule["port_range_max"] = port_range(port)
            if icmp_type is not None:
                rule["port_range_min"], rule["port_range_max"] = icmp_type, icmp_code
            if remote_ip is not None:
                rule["remote_ip_prefix"] = remote_ip
                rule["ethertype"] = "IPv6" if ":" in remote_ip else "IPv4"
            if remote_group is not None:
                rule["remote_group_id"] = client.find("securitygroups", remote_group)["id"]
            if ethertype is not None:
                rule["ethertype"] = ethertype
            if description is not None:
                rule["description"] = description
            show(client.add_rule(client.find("securitygroups", group)["id"], rule), as_json)

    @rule_app.command("remove")
    def rule_remove(group: str = typer.Argument(..., help="security group id or name"),
                    rule_id: str = typer.Argument(..., help="the rule's id (`kvnet securitygroup show`)"),
                    server: str = server_option()) -> None:
        """Remove one rule by its id."""
        with connected(server) as client:
            client.remove_rule(client.find("securitygroups", group)["id"], rule_id)
        say(f"removed rule {rule_id}")


def port_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise InvalidInput(f"'{text}' is not a port or FIRST-LAST range", field="port") from None


EXTRA: dict[str, Callable[[typer.Typer], None]] = {
    "hosts": host_commands,
    "securitygroups": securitygroup_commands,
    "ports": port_commands,
    "routers": router_commands,
    "floatingips": floatingip_commands,
}
