"""The libvirt device element for a kvnet port, one per vnic_type.

| vnic_type   | element                                          | data path                          |
|-------------|--------------------------------------------------|------------------------------------|
| normal      | `<interface type='ethernet'>` + driver qemu      | virtio queues served by qemu       |
| vhost       | `<interface type='ethernet'>` + driver vhost     | virtio queues served by vhost-net  |
| direct      | `<interface type='hostdev' managed='yes'>` (VF)  | SR-IOV VF; libvirt sets MAC + VLAN |
| passthrough | `<hostdev mode='subsystem' type='pci'>` (PF)     | the whole NIC belongs to the VM    |

For normal/vhost kvnet's agent creates the tap (`managed='no'`) and plugs it into the network's
bridge, so libvirt only opens it. With `bridge=` the element is `<interface type='bridge'>` instead and
libvirt plugs the tap itself. `normal` names `<driver name='qemu'/>` explicitly: libvirt would pick
vhost-net by default and the two types would be the same.

QoS: for tap-based ports `<bandwidth>` carries the policy (libvirt shapes the tap with tc). libvirt
does not support `<bandwidth>` on hostdev interfaces, so for direct ports the policy becomes the
VF's `max_tx_rate` (`kvnet.sriov.vf.settings_for_port`) and the element carries none.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from typing import Protocol

from kvnet.errors import InvalidInput
from kvnet.model.resources import Network, Port, QoSPolicy
from kvnet.plan import port_device_name

PCI_RE = re.compile(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$")


class PciDevice(Protocol):
    """Anything with a PCI address, such as `kvnet.sriov.inventory.VF` or `PF`."""

    @property
    def address(self) -> str: ...


def parse_pci_address(address: str) -> dict[str, str]:
    """'0000:03:10.1' -> libvirt's address attributes (domain, bus, slot, function in hex)."""
    match = PCI_RE.match(address.strip().lower())
    if not match:
        raise InvalidInput(f"'{address}' is not a PCI address (expected e.g. 0000:03:10.1)", "vf")
    domain, bus, slot, function = match.groups()
    return {"type": "pci", "domain": f"0x{domain or '0000'}", "bus": f"0x{bus}",
            "slot": f"0x{slot}", "function": f"0x{function}"}


def bandwidth_attrs(qos: QoSPolicy) -> dict[str, str]:
    """libvirt units: average in kilobytes/s (kbit/s / 8), burst in KiB (kbit * 1000 / 8 / 1024)."""
    attrs = {"average": str(max(1, math.ceil(qos.max_kbps / 8)))}
    if qos.max_burst_kbps:
        attrs["burst"] = str(max(1, math.ceil(qos.max_burst_kbps * 1000 / 8 / 1024)))
    return attrs


def interface_element(port: Port, network: Network, qos: QoSPolicy | None = None,
                      vf: str | PciDevice | None = None, bridge: str | None = None,
                      tap: str | None = None, mtu: int | None = None) -> ET.Element:
    """The device element for `port` (see the module table); raises InvalidInput when it cannot be built."""
    if port.vnic_type in ("normal", "vhost"):
        return _tap_interface(port, network, qos, bridge, tap or port_device_name(port.id), mtu)
    address = _pci_address(port, vf)
    if port.vnic_type == "direct":
        return _vf_interface(port, network, address)
    return _pci_hostdev(address)


def interface_xml(port: Port, network: Network, qos: QoSPolicy | None = None,
                  vf: str | PciDevice | None = None, bridge: str | None = None,
                  tap: str | None = None, mtu: int | None = None) -> str:
    """`interface_element` serialised, indented, without an XML declaration."""
    element = interface_element(port, network, qos, vf=vf, bridge=bridge, tap=tap, mtu=mtu)
    ET.indent(element, space="  ")
    return ET.tostring(element, encoding="unicode")


def _mac(port: Port) -> str:
    if not port.mac_address:
        raise InvalidInput(f"{port.ref()} has no MAC address yet (the server allocates one)", "mac_address")
    return port.mac_address


def _tap_interface(port: Port, network: Network, qos: QoSPolicy | None, bridge: str | None,
                   tap: str, mtu: int | None) -> ET.Element:
    if bridge:
        iface = ET.Element("interface", type="bridge")
        ET.SubElement(iface, "source", bridge=bridge)
        ET.SubElement(iface, "target", dev=tap)
    else:
        iface = ET.Element("interface", type="ethernet")
        ET.SubElement(iface, "target", dev=tap, managed="no")
    ET.SubElement(iface, "mac", address=_mac(port))
    ET.SubElement(iface, "model", type="virtio")
    ET.SubElement(iface, "driver", name="vhost" if port.vnic_type == "vhost" else "qemu")
    if qos is not None:
        bandwidth = ET.SubElement(iface, "bandwidth")
        ET.SubElement(bandwidth, "inbound", bandwidth_attrs(qos))
        ET.SubElement(bandwidth, "outbound", bandwidth_attrs(qos))
    size = mtu or network.mtu
    if size:
        ET.SubElement(iface, "mtu", size=str(size))
    return iface


def _pci_address(port: Port, vf: str | PciDevice | None) -> dict[str, str]:
    if vf is None:
        what = "a VF (kvnet.sriov.scheduler.pick_vf)" if port.vnic_type == "direct" else "a NIC's PCI address"
        raise InvalidInput(f"{port.ref()} has vnic_type {port.vnic_type}: it needs {what}", "vf")
    return parse_pci_address(vf if isinstance(vf, str) else vf.address)


def _vf_interface(port: Port, network: Network, address: dict[str, str]) -> ET.Element:
    if network.network_type not in ("flat", "vlan"):
        raise InvalidInput(f"{port.ref()}: a direct (SR-IOV) port needs a flat or vlan provider network, "
                           f"not {network.network_type}", "vnic_type")
    iface = ET.Element("interface", type="hostdev", managed="yes")
    source = ET.SubElement(iface, "source")
    ET.SubElement(source, "address", address)
    ET.SubElement(iface, "mac", address=_mac(port))
    if network.network_type == "vlan" and network.segmentation_id is not None:
        vlan = ET.SubElement(iface, "vlan")
        ET.SubElement(vlan, "tag", id=str(network.segmentation_id))
    return iface


def _pci_hostdev(address: dict[str, str]) -> ET.Element:
    hostdev = ET.Element("hostdev", mode="subsystem", type="pci", managed="yes")
    source = ET.SubElement(hostdev, "source")
    ET.SubElement(source, "address", {k: v for k, v in address.items() if k != "type"})
    return hostdev
