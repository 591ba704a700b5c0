"""`kvnet sriov check/enable` on fixture sysfs trees, and `kvnet port libvirt-xml` against a real server."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from kvnet.cli.main import app
from kvnet.client import Client

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import sysfs_builder

runner = CliRunner()


def test_check_passes_on_a_good_host_and_fails_with_the_fix(tmp_path: Path) -> None:
    good = runner.invoke(app, ["sriov", "check", "--root", str(sysfs_builder.make("good_82576", tmp_path)), "--json"])
    assert good.exit_code == 0, good.output
    assert json.loads(good.output)["ok"] is True
    bad = runner.invoke(app, ["sriov", "check", "--root", str(sysfs_builder.make("iommu_off", tmp_path)), "--json"])
    assert bad.exit_code == 1
    failures = [c for c in json.loads(bad.output)["checks"] if c["status"] == "fail"]
    assert any("intel_iommu=on iommu=pt" in c["fix"] for c in failures)


def test_enable_writes_numvfs(tmp_path: Path) -> None:
    root = sysfs_builder.make("no_vfs", tmp_path)
    pf = next(p.name for p in (root / "sys/class/net").iterdir() if p.name != "lo")
    result = runner.invoke(app, ["sriov", "enable", "--pf", pf, "--vfs", "4", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert (root / "sys/class/net" / pf / "device/sriov_numvfs").read_text().strip() == "4"
    too_many = runner.invoke(app, ["sriov", "enable", "--pf", pf, "--vfs", "999", "--root", str(root)])
    assert too_many.exit_code == 1


def test_port_libvirt_xml(client: Client) -> None:
    net = client.create("networks", {"name": "n"})
    client.create("subnets", {"network_id": net["id"], "cidr": "10.0.0.0/24"})
    client.create("ports", {"network_id": net["id"], "name": "vm1", "vnic_type": "vhost"})
    result = runner.invoke(app, ["port", "libvirt-xml", "vm1", "--server", client.url])
    assert result.exit_code == 0, result.output
    element = ET.fromstring(result.output)
    assert element.tag == "interface" and element.find("driver").get("name") == "vhost"
    assert element.find("mtu").get("size") == "1450"
