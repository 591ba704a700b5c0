"""examples/cloud.yaml applied to a lab: its `ssh-web` group really protects its ports (issue #14).

blue-vm1 (h2) and blue-vm2 (h3) are in `ssh-web` only: TCP 22 and 80 and ICMP from anywhere, all
egress. VMs on their ports: ICMP and SSH pass, any other port does not (real TCP connections)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kvnet.cli.main import app
from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import wait_port_active
from kvnet.lab.lab import Lab
from kvnet.lab.probe import ping_until
from kvnet.lab.testing import running_lab
from kvnet.lab.vm import create_vm, nic_up
from kvnet.sys.cmd import run

pytestmark = pytest.mark.root
EXAMPLE = Path(__file__).parents[2] / "examples" / "cloud.yaml"
CONNECT = ("import socket, sys\n"
           "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)\n")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(hosts=3, control_plane=True) as the_lab:
        yield the_lab


def connects(lab: Lab, vm: str, ip: str, port: int) -> str:
    """"open", "refused" (the peer answered: reached) or "filtered" (no answer: dropped on the way)."""
    proc = run(["python3", "-c", CONNECT, ip, str(port)], netns=n.vm_ns(lab.name, vm), check=False, timeout=10)
    if proc.returncode == 0:
        return "open"
    return "refused" if "ConnectionRefused" in proc.stderr else "filtered"


def test_the_example_groups_protect_their_ports(lab: Lab, tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["hosts"] = []  # the lab registered its own hosts h1-h3 (the same names and tunnel IPs)
    doc["config"] = {"underlay_mtu": n.UNDERLAY_MTU}
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(app, ["apply", "-f", str(path), "--yes", "--server", control.server_url(lab)])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    with Client(control.server_url(lab)) as client:
        vms = {}
        for name in ("blue-vm1", "blue-vm2"):
            port = client.find("ports", name, project="blue")
            subnet = client.get("subnets", port["fixed_ips"][0]["subnet_id"])
            network = client.get("networks", port["network_id"])
            create_vm(lab, name.replace("blue-", "b"), port["binding_host"], port, subnet, network["mtu"],
                      nic_up=False)
            wait_port_active(client, port["id"], 10)
            nic_up(lab, name.replace("blue-", "b"))
            vms[name] = port["fixed_ips"][0]["ip_address"]
    target = vms["blue-vm2"]
    assert ping_until(lab, "bvm1", target, 10) is not None  # ICMP from anywhere
    assert connects(lab, "bvm1", target, 22) == "refused"  # SSH allowed: nothing listens, the VM answers
    assert connects(lab, "bvm1", target, 23) == "filtered"  # no rule: dropped before the VM
    assert connects(lab, "bvm1", target, 80) == "refused"
