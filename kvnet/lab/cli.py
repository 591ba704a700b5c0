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

from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.control import ControlPlaneError
from kvnet.lab.lab import Lab, LabError
from kvnet.lab.spec import default_spec
from kvnet.lab.vm import create_vm, delete_vm
from kvnet.sys.cmd import CommandError, in_netns

app = typer.Typer(help="An emulated multi-host cloud in network namespaces.", no_args_is_help=True)
vm_app = typer.Typer(help="VMs of a lab (namespaces with a veth NIC).", no_args_is_help=True)
app.add_typer(vm_app, name="vm")

LabName = Annotated[str, typer.Option("--name", "--lab", envvar="KVNET_LAB", help="Lab name (3-8 chars).")]


@contextmanager
def _errors() -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit status 1."""
    if os.geteuid() != 0:
        typer.echo("kvnet lab needs root (network namespaces)", err=True)
        raise typer.Exit(1)
    try:
        yield
    except (LabError, ControlPlaneError, ValueError, CommandError, NotImplementedError, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _lab(name: str) -> Lab:
    return Lab(name)


@app.command()
def up(hosts: Annotated[int, typer.Option(help="Number of hypervisor hosts (h1 is also the network node).")] = 3,
       name: LabName = n.DEFAULT_LAB,
       control_plane: Annotated[bool | None, typer.Option(
           help="Start the API server and one agent per host (default: when `python -m kvnet` exists).")]
       = None) -> None:
    """Build the lab: underlay switch, external network, hosts (and server + agents)."""
    with _errors():
        lab = _lab(name)
        start = control.control_plane_available() if control_plane is None else control_plane
        lab.up(default_spec(name, hosts), control_plane=start)
        for h, d in lab.hosts().items():
            typer.echo(f"{h}: namespace {d['namespace']}, tunnel IP {d['tunnel_ip']}, roles {','.join(d['roles'])}")
        typer.echo(f"lab {name} is up ({lab.dir}){'' if start else '; control plane not started'}")


@app.command()
def demo(hosts: Annotated[int, typer.Option(help="Number of hypervisor hosts.")] = 3,
         name: Annotated[str, typer.Option("--name", help="Lab name for the demo (3-8 chars).")] = "kvdemo",
         as_json: Annotated[bool, typer.Option("--json", help="Print the measurements as JSON.")] = False) -> None:
    """Lab up, two tenant networks (same CIDR, two projects) across all hosts, reachability matrix with
    an underlay capture, convergence timings, lab down."""
    from kvnet.lab.demo import render_table, run_demo

    with _errors():
        data = run_demo(name, hosts, progress=lambda m: typer.echo(f"... {m}", err=True))
        typer.echo(json.dumps(data, indent=2) if as_json else render_table(data))
        if data["reachable_pairs"] != data["expected_reachable_pairs"] or data["isolation_leaks"]:
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
              name: LabName = n.DEFAULT_LAB) -> None:
    """Create a port on NETWORK bound to HOST through the API, then the VM namespace with that port."""
    with _errors():
        lab = _lab(name)
        lab.host_ns(host)
        port, subnet, mtu = control.create_port_for_vm(lab, vm, host, network, ip)
        rec = create_vm(lab, vm, host, port, subnet, mtu)
        typer.echo(f"vm {vm} on {host}: {', '.join(rec['ips'])} mac {rec['mac']} (port {rec['port_id']})")


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
        rc = subprocess.run(in_netns(cmd, n.vm_ns(name, vm))).returncode
    raise typer.Exit(rc)
