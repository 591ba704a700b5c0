"""VF drivers: NetlinkVFDriver's commands and vfinfo parsing, and the EmulatedVFDriver for real in
`kvtS` namespaces (this machine has no SR-IOV NIC: see kvnet/sriov/emulated.py for what is emulated)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvnet.errors import InvalidInput
from kvnet.model.resources import Network, Port, QoSPolicy
from kvnet.sriov.emulated import EmulatedVFDriver
from kvnet.sriov.vf import (
    RESET,
    NetlinkVFDriver,
    VFSettings,
    configure_argvs,
    parse_vfinfo,
    settings_for_port,
)
from kvnet.sys import netns
from kvnet.sys.cmd import CommandError, run, run_json

SAMPLE = json.loads((Path(__file__).resolve().parents[1] / "fixtures/sysfs/ip_link_show_vfinfo.json").read_text())
WANT = VFSettings(mac="FA:16:3E:AA:BB:06", vlan=100, spoofchk=True, trust=False, link_state="enable",
                  max_tx_rate_mbps=200)


def test_parse_vfinfo_sample() -> None:
    assert parse_vfinfo(SAMPLE, 0) == RESET
    assert parse_vfinfo(SAMPLE, 1) == VFSettings(mac="fa:16:3e:aa:bb:01", vlan=120, link_state="enable",
                                                 max_tx_rate_mbps=500)
    assert parse_vfinfo(SAMPLE, 6) == VFSettings(mac="fa:16:3e:aa:bb:06", vlan=100, spoofchk=False,
                                                 trust=True, link_state="disable")
    with pytest.raises(InvalidInput, match="p2p1 has no VF 3"):
        parse_vfinfo(SAMPLE, 3)


def test_parse_vfinfo_old_iproute2_keys() -> None:
    old = [{"ifname": "p2p1", "vfinfo_list": [{"vf": 2, "mac": "fa:16:3e:00:00:02", "vlan": 7, "tx_rate": 10,
                                               "spoofchk": True}]}]
    assert parse_vfinfo(old, 2) == VFSettings(mac="fa:16:3e:00:00:02", vlan=7, max_tx_rate_mbps=10)


def test_configure_all_fields_when_current_unknown() -> None:
    argvs = configure_argvs("p2p1", 6, WANT)
    base = ["ip", "link", "set", "dev", "p2p1", "vf", "6"]
    assert argvs == [[*base, "mac", "fa:16:3e:aa:bb:06"], [*base, "vlan", "100"], [*base, "spoofchk", "on"],
                     [*base, "trust", "off"], [*base, "state", "enable"], [*base, "max_tx_rate", "200"]]


def test_configure_only_what_differs_and_reset_clears_stale_vlan() -> None:
    current = parse_vfinfo(SAMPLE, 6)  # the source document's VF 6 with VLAN 100 left on it
    argvs = configure_argvs("p2p1", 6, RESET, current)
    assert ["ip", "link", "set", "dev", "p2p1", "vf", "6", "vlan", "0"] in argvs
    assert [a[7] for a in argvs] == ["mac", "vlan", "spoofchk", "trust", "state"]  # rate already 0
    assert configure_argvs("p2p1", 6, current, current) == []


def test_vf_settings_validation() -> None:
    with pytest.raises(InvalidInput):
        VFSettings(vlan=4095)
    with pytest.raises(InvalidInput):
        VFSettings(mac="nope")
    with pytest.raises(InvalidInput):
        VFSettings(max_tx_rate_mbps=-1)


def test_settings_for_port() -> None:
    port = Port(network_id="n", mac_address="fa:16:3e:00:00:09", vnic_type="direct",
                port_security_enabled=False, binding_profile={"trusted": True})
    vlan = Network(network_type="vlan", physnet="physnet2", segmentation_id=120)
    assert settings_for_port(port, vlan, QoSPolicy(max_kbps=100_500)) == VFSettings(
        mac="fa:16:3e:00:00:09", vlan=120, spoofchk=False, trust=True, max_tx_rate_mbps=101)
    flat = Network(network_type="flat", physnet="physnet2")
    assert settings_for_port(port, flat).vlan == 0 and settings_for_port(port, flat).max_tx_rate_mbps == 0


class Recorder:
    """Stands in for iproute2 in NetlinkVFDriver: answers `show` with the captured sample."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, argv: list[str], netns: str | None = None) -> None:
        self.commands.append(argv)

    def run_json(self, argv: list[str], netns: str | None = None) -> list:
        assert argv == ["ip", "-j", "-d", "link", "show", "dev", "p2p1"]
        return SAMPLE


def test_netlink_driver_reset_uses_read_back_state() -> None:
    rec = Recorder()
    NetlinkVFDriver(run=rec.run, run_json=rec.run_json).reset("p2p1", 1)
    assert [c[7:] for c in rec.commands] == [["mac", "00:00:00:00:00:00"], ["vlan", "0"], ["state", "auto"],
                                             ["max_tx_rate", "0"]]


# --- real kernel -----------------------------------------------------------------------------------

@dataclass
class Lab:
    host: str  # namespace holding the (emulated) PF p2p1
    ext: str  # namespace at the other end of the external segment (ext0)


@pytest.fixture
def lab() -> Iterator[Lab]:
    suffix = uuid.uuid4().hex[:8]
    names = Lab(host=f"kvtS{suffix}h", ext=f"kvtS{suffix}x")
    try:
        netns.add(names.host)
        netns.add(names.ext)
        netns.add_veth("p2p1", names.host, "ext0", names.ext)
        run(["ip", "addr", "add", "198.51.100.1/24", "dev", "ext0"], netns=names.ext)
        yield names
    finally:
        netns.delete(names.host)
        netns.delete(names.ext)


@pytest.mark.root
def test_netlink_commands_reach_the_kernel(lab: Lab) -> None:
    """The argv iproute2 gets is well-formed: the kernel (not the parser) refuses it on a veth."""
    driver = NetlinkVFDriver(netns=lab.host)
    with pytest.raises(CommandError) as exc:
        for argv in configure_argvs("p2p1", 0, WANT):
            run(argv, netns=lab.host)
    assert exc.value.returncode == 2 and "Operation not supported" in exc.value.stderr
    with pytest.raises(InvalidInput, match="p2p1 has no VF 0"):
        driver.read("p2p1", 0)


@pytest.mark.root
def test_emulated_configure_read_reset(lab: Lab, tmp_path: Path) -> None:
    driver = EmulatedVFDriver(lab.host, tmp_path / "vfs.json")
    assert driver.read("p2p1", 3) == RESET
    driver.configure("p2p1", 3, WANT)
    assert driver.read("p2p1", 3) == VFSettings(mac="fa:16:3e:aa:bb:06", vlan=100, link_state="enable",
                                                max_tx_rate_mbps=200)
    # The kernel really has it: the endpoint's MAC, up, and a tbf at 200 Mbit/s (25 MB/s).
    [link] = run_json(["ip", "-j", "link", "show", "dev", "p2p1v3"], netns=lab.host)
    assert link["address"] == "fa:16:3e:aa:bb:06" and "UP" in link["flags"] and link["link"] == "p2p1"
    [qdisc] = run_json(["tc", "-j", "qdisc", "show", "dev", "p2p1v3", "root"], netns=lab.host)
    assert qdisc["kind"] == "tbf" and qdisc["options"]["rate"] == 25_000_000
    # Frames from the VF leave through the PF with the VF's MAC: the far end learns it.
    run(["ip", "addr", "add", "198.51.100.13/24", "dev", "p2p1v3"], netns=lab.host)
    run(["ping", "-c", "1", "-W", "2", "198.51.100.1"], netns=lab.host)
    neigh = run_json(["ip", "-j", "neigh", "show", "198.51.100.13", "dev", "ext0"], netns=lab.ext)
    assert neigh[0]["lladdr"] == "fa:16:3e:aa:bb:06"

    # Change: rate off, link disabled, new VLAN -> qdisc gone, endpoint down.
    changed = VFSettings(mac="fa:16:3e:aa:bb:06", vlan=120, link_state="disable")
    driver.configure("p2p1", 3, changed)
    assert driver.read("p2p1", 3) == changed
    qdiscs = run_json(["tc", "-j", "qdisc", "show", "dev", "p2p1v3", "root"], netns=lab.host)
    assert not [q for q in qdiscs if q["kind"] == "tbf"]

    driver.reset("p2p1", 3)
    assert driver.read("p2p1", 3) == RESET
    assert run(["ip", "link", "show", "dev", "p2p1v3"], netns=lab.host, check=False).returncode != 0
    assert json.loads((tmp_path / "vfs.json").read_text()) == {"p2p1": {}}


@pytest.mark.root
def test_emulated_state_survives_a_new_driver(lab: Lab, tmp_path: Path) -> None:
    EmulatedVFDriver(lab.host, tmp_path / "vfs.json").configure("p2p1", 0, WANT)
    again = EmulatedVFDriver(lab.host, tmp_path / "vfs.json")  # e.g. the agent restarted
    assert again.read("p2p1", 0).vlan == 100
    with pytest.raises(ValueError, match="VFs 0-6, not 7"):
        again.configure("p2p1", 7, WANT)
