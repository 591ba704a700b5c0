"""Commands that are not plain CRUD: router interfaces and gateway, floating IP association, config,
host delete with drain."""

from __future__ import annotations

import time
from collections.abc import Callable

import typer

from kvnet.cli.common import connected, json_option, parse_assignments, server_option, show
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


EXTRA: dict[str, Callable[[typer.Typer], None]] = {
    "hosts": host_commands,
    "ports": port_commands,
    "routers": router_commands,
    "floatingips": floatingip_commands,
}
