"""libvirt interface XML per vnic_type: parsed back field by field, and validated against libvirt's
own RelaxNG schema with virt-xml-validate (Debian: libvirt-clients + libxml2-utils)."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kvnet.errors import InvalidInput
from kvnet.model.resources import Network, Port, QoSPolicy
from kvnet.virt.libvirt_xml import bandwidth_attrs, interface_xml, parse_pci_address

MAC = "fa:16:3e:00:00:01"
VLAN_NET = Network(network_type="vlan", physnet="physnet2", segmentation_id=100, mtu=1500)
FLAT_NET = Network(network_type="flat", physnet="physnet2")
VXLAN_NET = Network(network_type="vxlan", segmentation_id=1001, mtu=1450)
QOS = QoSPolicy(max_kbps=100_000, max_burst_kbps=8_000)


def port(vnic_type: str) -> Port:
    return Port(id="0a1b2c3d-4e5f-6789-abcd-ef0123456789", network_id=VXLAN_NET.id, mac_address=MAC,
                vnic_type=vnic_type)


def parse(text: str) -> ET.Element:
    return ET.fromstring(text)


def test_normal_is_ethernet_tap_with_qemu_virtio() -> None:
    el = parse(interface_xml(port("normal"), VXLAN_NET, QOS, tap="kvt-test0"))
    assert el.tag == "interface" and el.get("type") == "ethernet"
    assert el.find("target").attrib == {"dev": "kvt-test0", "managed": "no"}
    assert el.find("mac").get("address") == MAC
    assert el.find("model").get("type") == "virtio"
    assert el.find("driver").get("name") == "qemu"
    assert el.find("mtu").get("size") == "1450"


def test_default_tap_name_is_the_agents_device_name() -> None:
    el = parse(interface_xml(port("normal"), VXLAN_NET))
    assert el.find("target").get("dev") == "kvt-0a1b2c3d4e"
    assert el.find("bandwidth") is None


def test_vhost_adds_vhost_driver_and_bridge_mode() -> None:
    el = parse(interface_xml(port("vhost"), VXLAN_NET, bridge="kvb-abc", tap="kvt-x", mtu=9000))
    assert el.get("type") == "bridge"
    assert el.find("source").get("bridge") == "kvb-abc"
    assert el.find("driver").get("name") == "vhost"
    assert el.find("mtu").get("size") == "9000"


def test_bandwidth_in_libvirt_units() -> None:
    el = parse(interface_xml(port("normal"), VXLAN_NET, QOS))
    for direction in ("inbound", "outbound"):
        attrs = el.find(f"bandwidth/{direction}").attrib
        assert attrs == {"average": "12500", "burst": "977"}  # 100000 kbit/s = 12500 kB/s; 8000 kbit ~ 977 KiB
    assert bandwidth_attrs(QoSPolicy(max_kbps=8)) == {"average": "1"}


def test_direct_is_hostdev_interface_with_vlan() -> None:
    el = parse(interface_xml(port("direct"), VLAN_NET, QOS, vf="0000:03:10.6"))
    assert el.tag == "interface" and el.attrib == {"type": "hostdev", "managed": "yes"}
    assert el.find("source/address").attrib == {"type": "pci", "domain": "0x0000", "bus": "0x03",
                                                "slot": "0x10", "function": "0x6"}
    assert el.find("mac").get("address") == MAC
    assert el.find("vlan/tag").get("id") == "100"
    assert el.find("bandwidth") is None  # libvirt has no bandwidth on hostdev: the VF's max_tx_rate instead


def test_direct_on_flat_network_has_no_vlan() -> None:
    el = parse(interface_xml(port("direct"), FLAT_NET, vf="0000:81:02.1"))
    assert el.find("vlan") is None
    assert el.find("source/address").get("bus") == "0x81"


def test_passthrough_is_pci_hostdev() -> None:
    el = parse(interface_xml(port("passthrough"), FLAT_NET, vf="0000:03:00.0"))
    assert el.tag == "hostdev" and el.attrib == {"mode": "subsystem", "type": "pci", "managed": "yes"}
    assert el.find("source/address").attrib == {"domain": "0x0000", "bus": "0x03", "slot": "0x00",
                                                "function": "0x0"}


@pytest.mark.parametrize(("vnic_type", "network", "vf", "field"), [
    ("direct", VLAN_NET, None, "vf"),
    ("direct", VXLAN_NET, "0000:03:10.0", "vnic_type"),
    ("direct", VLAN_NET, "03:10", "vf"),
    ("passthrough", FLAT_NET, None, "vf"),
])
def test_invalid_combinations(vnic_type: str, network: Network, vf: str | None, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        interface_xml(port(vnic_type), network, vf=vf)
    assert exc.value.field == field


def test_port_without_mac_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="no MAC"):
        interface_xml(Port(network_id="n"), VXLAN_NET)


def test_pci_address_without_domain() -> None:
    assert parse_pci_address("03:10.1")["domain"] == "0x0000"


VALIDATOR = shutil.which("virt-xml-validate")
XMLLINT = shutil.which("xmllint")


def validate(device_xml: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    domain = ("<domain type='kvm'><name>kvnet-check</name><memory unit='KiB'>131072</memory>"
              f"<os><type>hvm</type></os><devices>{device_xml}</devices></domain>")
    path = tmp_path / "domain.xml"
    path.write_text(domain)
    return subprocess.run([VALIDATOR, str(path), "domain"], capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not (VALIDATOR and XMLLINT), reason="virt-xml-validate/xmllint absent: "
                    "apt-get install libvirt-clients libxml2-utils")
@pytest.mark.parametrize(("vnic_type", "network", "kwargs"), [
    ("normal", VXLAN_NET, {"qos": QOS}),
    ("vhost", VXLAN_NET, {"qos": QOS, "bridge": "kvb-abc"}),
    ("direct", VLAN_NET, {"vf": "0000:03:10.6"}),
    ("passthrough", FLAT_NET, {"vf": "0000:03:00.0"}),
])
def test_validates_against_libvirt_schema(vnic_type: str, network: Network, kwargs: dict,
                                          tmp_path: Path) -> None:
    result = validate(interface_xml(port(vnic_type), network, **kwargs), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not (VALIDATOR and XMLLINT), reason="virt-xml-validate/xmllint absent")
def test_schema_validation_catches_a_broken_element(tmp_path: Path) -> None:
    broken = interface_xml(port("direct"), VLAN_NET, vf="0000:03:10.6").replace("0x6", "0x9")
    assert validate(broken, tmp_path).returncode != 0  # function 9 does not exist: the check has teeth
