"""`kvnet sriov …` (host inventory, preflight, VFs, OpenStack interop) and `kvnet port libvirt-xml`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from kvnet.cli.common import connected, json_option, server_option
from kvnet.cli.output import errors_to_exit, print_json, print_table

app = typer.Typer(no_args_is_help=True, help="SR-IOV: host inventory and preflight, VFs, OpenStack config.")
SYSFS_ROOT_HELP = "filesystem root to read /sys and /proc from (a fixture tree in tests)"


@app.command()
def check(root: Path = typer.Option(Path("/"), help=SYSFS_ROOT_HELP),
          pf: list[str] = typer.Option(None, help="check only these PFs (default: every SR-IOV-capable NIC)"),
          as_json: bool = json_option()) -> None:
    """Preflight: IOMMU, SR-IOV capable NICs, VFs created, PCIe width; each failure with its fix."""
    from kvnet.sriov.inventory import scan
    from kvnet.sriov.preflight import failed, preflight

    with errors_to_exit():
        inventory = scan(root)
        results = preflight(inventory, pf or None)
    if as_json:
        print_json({"checks": [dataclasses.asdict(r) for r in results],
                    "pfs": [dataclasses.asdict(p) for p in inventory.pfs], "ok": not failed(results)})
    else:
        print_table(["check", "status", "found", "fix"], [[r.name, r.status, r.message, r.fix] for r in results])
    if failed(results):
        raise typer.Exit(1)


@app.command()
def enable(pf: str = typer.Option(..., help="the physical function's interface, e.g. p2p1"),
           vfs: int = typer.Option(..., help="how many VFs to create"),
           root: Path = typer.Option(Path("/"), help=SYSFS_ROOT_HELP)) -> None:
    """Create N VFs on a PF (writes sriov_numvfs, through 0 when changing a non-zero count)."""
    from kvnet.sriov.enable import set_num_vfs

    with errors_to_exit():
        written = set_num_vfs(root, pf, vfs)
    typer.echo(f"{pf}: sriov_numvfs <- {' then '.join(map(str, written))}")


@app.command("openstack-config")
def openstack_config(host: str = typer.Option(..., help="host name as registered in kvnet"),
                     root: Path = typer.Option(Path("/"), help=SYSFS_ROOT_HELP),
                     server: str = server_option()) -> None:
    """ml2_conf.ini, sriov_agent.ini and nova.conf settings for running kvnet beside Neutron."""
    from kvnet.model.resources import CloudConfig, Host, Network
    from kvnet.sriov import openstack
    from kvnet.sriov.inventory import scan

    with connected(server) as client:
        host_obj = Host.model_validate(client.get("hosts", host))
        networks = [Network.model_validate(n) for n in client.list("networks")]
        config = CloudConfig.model_validate(client.config())
        typer.echo(openstack.openstack_config(host_obj, networks, scan(root), config.vlan_ranges or None))


def libvirt_xml(port: str = typer.Argument(..., help="port id or name"),
                vf: str = typer.Option(None, help="PCI address of the VF (direct) or NIC (passthrough)"),
                server: str = server_option()) -> None:
    """The libvirt <interface>/<hostdev> element for a port."""
    from kvnet.model.resources import Network, Port, QoSPolicy
    from kvnet.virt.libvirt_xml import interface_xml

    with connected(server) as client:
        port_obj = Port.model_validate(client.find("ports", port))
        network = Network.model_validate(client.get("networks", port_obj.network_id))
        qos = QoSPolicy.model_validate(client.get("qospolicies", port_obj.qos_policy_id)) \
            if port_obj.qos_policy_id else None
        typer.echo(interface_xml(port_obj, network, qos, vf=vf or port_obj.binding_profile.get("pci_slot"),
                                 mtu=network.mtu))
