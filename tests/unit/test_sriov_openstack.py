"""The Neutron/Nova config generated for an SR-IOV host, parsed back as ini files."""

from __future__ import annotations

import configparser
import json
import sys
from pathlib import Path

from kvnet.model.resources import Host, Network
from kvnet.sriov.inventory import scan
from kvnet.sriov.openstack import ML2, NOVA, SRIOV_AGENT, openstack_config, openstack_config_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import sysfs_builder

HOST = Host(name="cn1", tunnel_ip="10.0.0.1", physnets={"physnet2": "p2p1", "physnet1": "eth1"},
            dataplane="ovs")
NETWORKS = [Network(network_type="vlan", physnet="physnet2", segmentation_id=150),
            Network(network_type="vlan", physnet="physnet2", segmentation_id=100),
            Network(network_type="vlan", physnet="physnet2", segmentation_id=199),
            Network(network_type="vxlan", segmentation_id=5000)]


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False)
    parser.read_string(text)
    return parser


def test_files(tmp_path: Path) -> None:
    files = openstack_config_files(HOST, NETWORKS, scan(sysfs_builder.make("good_82576", tmp_path)))
    ml2, agent, nova = ini(files[ML2]), ini(files[SRIOV_AGENT]), ini(files[NOVA])
    assert ml2["ml2"]["mechanism_drivers"] == "openvswitch,sriovnicswitch"
    assert ml2["ml2_type_vlan"]["network_vlan_ranges"] == "physnet2:100:199"
    assert ml2["ml2_sriov"]["supported_pci_vendor_devs"] == "8086:10ca"
    assert agent["sriov_nic"]["physical_device_mappings"] == "physnet2:p2p1"  # eth1 is not a PF here
    assert agent["securitygroup"]["firewall_driver"] == "noop"
    assert json.loads(nova["pci"]["passthrough_whitelist"]) == {"devname": "p2p1",
                                                                "physical_network": "physnet2"}
    assert "ml2_type_flat" not in ml2


def test_explicit_ranges_linux_dataplane_and_flat(tmp_path: Path) -> None:
    host = HOST.model_copy(update={"dataplane": "linux"})
    nets = [*NETWORKS, Network(network_type="flat", physnet="physnet3")]
    text = openstack_config(host, nets, scan(sysfs_builder.make("ixgbe_82599_x4", tmp_path)),
                            vlan_ranges={"physnet2": [(100, 199), (300, 310)]})
    assert "mechanism_drivers = linuxbridge,sriovnicswitch" in text
    assert "network_vlan_ranges = physnet2:100:199,physnet2:300:310" in text
    assert "flat_networks = physnet3" in text
    assert "supported_pci_vendor_devs = 8086:10ed" in text
    assert text.startswith("# /etc/neutron/plugins/ml2/ml2_conf.ini (host cn1)")
