"""`kvnet lab ...`: build, inspect and remove an emulated cloud. Mount with
`app.add_typer(kvnet.lab.cli.app, name="lab")`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from kvnet.cli.common import terminate_like_interrupt
from kvnet.errors import KvnetError
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.control import ControlPlaneError
from kvnet.lab.lab import Lab, LabError
from kvnet.lab.vm import create_vm, delete_vm
from kvnet.sys.cmd import CommandError, in_netns

app = typer.Typer(help="An emulated multi-host cloud in network namespaces.", no_args_is_help=True)
app.callback()(terminate_like_interrupt)
vm_app = typer.Typer(help="VMs of a lab (namespaces with a veth NIC).", no_args_is_help=True)
app.add_typer(vm_app, name="vm")

LabName = Annotated[str, typer.Option("--name", "--lab", envvar="KVNET_LAB", help="Lab name (3-8 chars).")]
StoreOpt = Annotated[str, typer.Option(
    "--store", help="sqlite (one API server) or etcd (a 3-member etcd cluster on loopback, two API servers).")]
DataplaneOpt = Annotated[str, typer.Option(
    "--dataplane", help="linux, ovs (OVS userspace per host), or mixed (odd hosts linux, even hosts ovs).")]


@contextmanager
def _errors() -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit status 1."""
    if os.geteuid() != 0:
        typer.echo("kvnet lab needs root (network namespaces)", err=True)
        raise typer.Exit(1)
    try:
        yield
    except (LabError, ControlPlaneError, KvnetError, ValueError, CommandError, NotImplementedError,
            TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _check_store(store: str) -> str:
    if store not in ("sqlite", "etcd"):
        raise LabError(f"--store must be sqlite or etcd, not {store!r}")
    return store


def _lab(name: str) -> Lab:
    return Lab(name)


@app.command()
def up(hosts: Annotated[int, typer.Option(help="Number of hypervisor hosts (h1 is also the network node).")] = 3,
       name: LabName = n.DEFAULT_LAB,
       control_plane: Annotated[bool | None, typer.Option(
           help="Start the API server and one agent per host (default: when `python -m kvnet` exists).")]
       = None,
       dataplane: DataplaneOpt = "linux", store: StoreOpt = "sqlite") -> None:
    """Build the lab: underlay switch, external network, hosts (and server + agents)."""
    from kvnet.lab.ovs import lab_spec

    with _errors():
        lab = _lab(name)
        start = control.control_plane_available() if control_plane is None else control_plane
        lab.up(lab_spec(name, hosts, dataplane), control_plane=start, store=_check_store(store))
        for h, d in lab.hosts().items():
            typer.echo(f"{h}: namespace {d['namespace']}, tunnel IP {d['tunnel_ip']}, roles {','.join(d['roles'])}, "
                       f"dataplane {d['dataplane']}")
        typer.echo(f"lab {name} is up ({lab.dir}){'' if start else '; control plane not started'}")


@app.command()
def demo(hosts: Annotated[int, typer.Option(help="Number of hypervisor hosts.")] = 3,
         name: Annotated[str, typer.Option("--name", help="Lab name for the demo (3-8 chars).")] = "kvdemo",
         as_json: Annotated[bool, typer.Option("--json", help="Print the measurements as JSON.")] = False,
         dataplane: DataplaneOpt = "linux", store: StoreOpt = "sqlite",
         scenario: Annotated[str | None, typer.Option(
             help="centralized|distributed: a router of that mode, floating IPs, SNAT, hairpin, stale objects "
                  "(kvnet.lab.demo_routing); security: spoofing and security groups tried as a tenant would "
                  "(kvnet.lab.demo_security).")] = None) -> None:
    """Lab up, two tenant networks (same CIDR, two projects) across all hosts, reachability matrix with
    an underlay capture, convergence timings, lab down. With --dataplane ovs also GRE and VLAN networks."""
    from kvnet.lab.demo import render_table, run_demo
    from kvnet.lab.demo_ovs import network_types_ok, render_network_types, run_dataplane_demo

    progress = lambda m: typer.echo(f"... {m}", err=True)  # noqa: E731
    if scenario == "security":
        _security_demo(name, hosts, dataplane, as_json, progress)
        return
    if scenario is not None:
        _routing_demo(name, hosts, scenario, as_json, progress)
        return
    with _errors():
        if dataplane == "linux":
            data = run_demo(name, hosts, progress=progress, store=_check_store(store))
        else:
            data = run_dataplane_demo(name, hosts, dataplane, progress=progress)
        typer.echo(json.dumps(data, indent=2) if as_json else render_table(data) + render_network_types(data))
        if (data["reachable_pairs"] != data["expected_reachable_pairs"] or data["isolation_leaks"]
                or data["tenant_arp_in_tunnels"]
                or not network_types_ok(data)):
            raise typer.Exit(1)


def _security_demo(name: str, hosts: int, dataplane: str, as_json: bool, progress: Callable[[str], None]) -> None:
    from kvnet.lab import demo_security

    with _errors():
        data = demo_security.run_security_demo(name, hosts, dataplane, progress=progress)
        typer.echo(json.dumps(data, indent=2) if as_json else demo_security.render_table(data))
    if not demo_security.demo_ok(data):
        raise typer.Exit(1)


def _routing_demo(name: str, hosts: int, scenario: str, as_json: bool, progress: Callable[[str], None]) -> None:
    from kvnet.lab import demo_routing

    if scenario not in ("centralized", "distributed"):
        typer.echo("error: --scenario is centralized, distributed or security", err=True)
        raise typer.Exit(2)
    with _errors():
        data = demo_routing.run_routing_demo(name, hosts, scenario, progress=progress)
        typer.echo(json.dumps(data, indent=2) if as_json else demo_routing.render_table(data))
    if not demo_routing.demo_ok(data):
        raise typer.Exit(1)


@app.command()
def down(name: LabName = n.DEFAULT_LAB) -> None:
    """Remove everything of the lab: processes, namespaces, lab directory (also after a crash)."""
    with _errors():
        report = _lab(name).down()
        typer.echo(f"lab {name} down: stopped {len(report.processes)} process group(s), "
                   f"{len(report.strays)} stray process(es), removed {len(report.namespaces)} namespace(s)")


@app.command()
def status(name: LabName = n.DEFAULT_LAB,
           as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Namespaces present, processes alive (with the log tail of dead ones), VMs."""
    with _errors():
        st = _lab(name).status()
        if as_json:
            typer.echo(json.dumps(st, indent=2, sort_keys=True))
            return
        _print_status(st, typer.echo)
        if not st["up"]:
            raise typer.Exit(1)


def _print_status(st: dict[str, Any], echo: Callable[[str], Any]) -> None:
    echo(f"lab {st['name']}: {'up' if st['up'] else 'NOT up'} ({st['dir']})")
    for ns, present in st["namespaces"].items():
        echo(f"  namespace {ns}: {'present' if present else 'MISSING'}")
    for ns in st["stray_namespaces"]:
        echo(f"  namespace {ns}: stray (not in state.json)")
    for name, p in st["processes"].items():
        echo(f"  process {name} (pid {p['pid']}): {'alive' if p['alive'] else 'DEAD'}")
        if not p["alive"] and p.get("log_tail"):
            echo("    " + p["log_tail"].replace("\n", "\n    "))
    for name, v in st["vms"].items():
        echo(f"  vm {name} on {v['host']}: {', '.join(v['ips'])} mac {v['mac']} device {v['device']}")


@vm_app.command("create")
def vm_create(vm: Annotated[str, typer.Argument(help="VM name.")],
              host: Annotated[str, typer.Option(help="Host to run on (e.g. h2).")],
              network: Annotated[str, typer.Option(help="Network name or id.")],
              ip: Annotated[str | None, typer.Option(help="Fixed IP (default: allocated).")] = None,
              qemu: Annotated[bool, typer.Option(
                  "--qemu", help="A real guest (qemu, virtio-net on a tap) instead of a namespace.")] = False,
              name: LabName = n.DEFAULT_LAB) -> None:
    """Create a port on NETWORK bound to HOST through the API, then the VM (namespace, or guest with --qemu)."""
    with _errors():
        lab = _lab(name)
        lab.host_ns(host)
        port, subnet, mtu = control.create_port_for_vm(lab, vm, host, network, ip)
        boot = _boot_qemu if qemu else create_vm
        try:
            rec = boot(lab, vm, host, port, subnet, mtu)
        except BaseException:
            control.delete_port_for_vm(lab, port["id"])  # nothing left behind by a VM that did not come up
            raise
        typer.echo(f"vm {vm} on {host}: {', '.join(rec['ips'])} mac {rec['mac']} (port {rec['port_id']})"
                   + (f", {rec['accel']} guest up {rec['boot_s']} s after resume" if qemu else ""))


def _boot_qemu(lab: Lab, vm: str, host: str, port: dict[str, Any], subnet: dict[str, Any],
               mtu: int) -> dict[str, Any]:
    from kvnet.client import Client
    from kvnet.lab.qemu_vm import GuestNic, boot_guest, qemu_available

    reason = qemu_available()
    if reason:
        raise LabError(f"cannot run a qemu guest: {reason}")
    with Client(control.server_url(lab)) as client:
        return boot_guest(lab, client, vm, host, [GuestNic(port, subnet, mtu)])


@vm_app.command("delete")
def vm_delete(vm: Annotated[str, typer.Argument(help="VM name.")], name: LabName = n.DEFAULT_LAB) -> None:
    """Delete the VM namespace and its port."""
    with _errors():
        lab = _lab(name)
        record = lab.vms().get(vm)
        if record is None:
            raise LabError(f"lab {name} has no VM {vm!r}")
        delete_vm(lab, vm)
        control.delete_port_for_vm(lab, record["port_id"])
        typer.echo(f"vm {vm} deleted")


@vm_app.command("exec")
def vm_exec_cmd(vm: Annotated[str, typer.Argument(help="VM name.")],
                cmd: Annotated[list[str], typer.Argument(help="Command after `--`.")],
                name: LabName = n.DEFAULT_LAB) -> None:
    """Run a command inside the VM: `kvnet lab vm exec vm1 -- ping -c1 10.0.0.3`."""
    with _errors():
        lab = _lab(name)
        if vm not in lab.vms():
            raise LabError(f"lab {name} has no VM {vm!r}")
        if lab.vms()[vm].get("kind") == "qemu":  # a real guest: through its serial command channel
            from kvnet.lab.qemu_vm import guest_exec

            proc = guest_exec(lab, vm, cmd, timeout=300)
            typer.echo(proc.stdout, nl=False)
            rc = proc.returncode
        else:
            rc = subprocess.run(in_netns(cmd, n.vm_ns(name, vm))).returncode
    raise typer.Exit(rc)
