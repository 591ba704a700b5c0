"""The OpenStack (Neutron + Nova) settings equivalent to a kvnet SR-IOV host, for operators who
run both or migrate: the configuration steps of the source document's §5, generated from the model.

Option names follow the source document's OpenStack release; newer releases renamed two of them,
noted in the output: Nova's `[pci] passthrough_whitelist` became `device_spec` (Zed) and the SR-IOV
mechanism driver's `[ml2_sriov] supported_pci_vendor_devs` was dropped by later releases.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from kvnet.model.resources import Host, Network
from kvnet.sriov.inventory import Inventory

ML2 = "/etc/neutron/plugins/ml2/ml2_conf.ini"
SRIOV_AGENT = "/etc/neutron/plugins/ml2/sriov_agent.ini"
NOVA = "/etc/nova/nova.conf"


def vlan_ranges_from_networks(networks: Iterable[Network]) -> dict[str, tuple[int, int]]:
    """physnet -> (lowest, highest) VLAN id used by the given VLAN networks."""
    ranges: dict[str, tuple[int, int]] = {}
    for net in networks:
        if net.network_type == "vlan" and net.physnet and net.segmentation_id is not None:
            low, high = ranges.get(net.physnet, (net.segmentation_id, net.segmentation_id))
            ranges[net.physnet] = (min(low, net.segmentation_id), max(high, net.segmentation_id))
    return ranges


def openstack_config_files(host: Host, networks: Sequence[Network], inventory: Inventory,
                           vlan_ranges: Mapping[str, Sequence[tuple[int, int]]] | None = None
                           ) -> dict[str, str]:
    """File path -> ini text. SR-IOV physnets are the host's physnets whose interface is an SR-IOV PF.

    `vlan_ranges` (CloudConfig.vlan_ranges) wins; without it the ranges span the networks' VLAN ids.
    """
    sriov = {physnet: ifname for physnet, ifname in sorted(host.physnets.items())
             if (pf := inventory.pf(ifname)) is not None and pf.sriov_capable}
    if vlan_ranges is None:
        ranges = {p: [r] for p, r in vlan_ranges_from_networks(networks).items()}
    else:
        ranges = {p: list(r) for p, r in vlan_ranges.items()}
    vlan_items = [f"{p}:{lo}:{hi}" for p in sorted(ranges) for lo, hi in ranges[p]]
    flat = sorted({n.physnet for n in networks if n.network_type == "flat" and n.physnet})
    vf_ids = sorted({vf.vendor_device for ifname in sriov.values() for vf in inventory.pf(ifname).vfs}
                    | {m.vf_id for ifname in sriov.values() if (m := inventory.pf(ifname).model)})
    bridge_driver = "openvswitch" if host.dataplane == "ovs" else "linuxbridge"
    whitelist = [json.dumps({"devname": ifname, "physical_network": physnet})
                 for physnet, ifname in sriov.items()]
    return {
        ML2: _ini({
            "ml2": [("type_drivers", "flat,vlan,vxlan"), ("tenant_network_types", "vxlan"),
                    ("mechanism_drivers", f"{bridge_driver},sriovnicswitch")],
            **({"ml2_type_flat": [("flat_networks", ",".join(flat))]} if flat else {}),
            "ml2_type_vlan": [("network_vlan_ranges", ",".join(vlan_items))],
            "ml2_sriov": [("# the source document's release needs it; later releases dropped the option", None),
                          ("supported_pci_vendor_devs", ",".join(vf_ids))],
        }),
        SRIOV_AGENT: _ini({
            "sriov_nic": [("physical_device_mappings",
                           ",".join(f"{p}:{i}" for p, i in sriov.items()))],
            "securitygroup": [("# VF traffic bypasses the host: no security groups", None),
                              ("firewall_driver", "noop")],
        }),
        NOVA: _ini({
            "pci": [("# called device_spec since Zed", None),
                    *[("passthrough_whitelist", w) for w in whitelist]],
            "filter_scheduler": [("enabled_filters", "ComputeFilter,PciPassthroughFilter")],
        }),
    }


def openstack_config(host: Host, networks: Sequence[Network], inventory: Inventory,
                     vlan_ranges: Mapping[str, Sequence[tuple[int, int]]] | None = None) -> str:
    """All files as one text, each under a `# <path>` header (what `kvnet sriov openstack-config` prints)."""
    files = openstack_config_files(host, networks, inventory, vlan_ranges)
    return "\n".join(f"# {path} (host {host.name or host.id})\n{text}" for path, text in files.items())


def _ini(sections: dict[str, list[tuple[str, str | None]]]) -> str:
    lines = []
    for section, items in sections.items():
        lines.append(f"[{section}]")
        lines.extend(key if value is None else f"{key} = {value}" for key, value in items)
        lines.append("")
    return "\n".join(lines)
