"""What an agent tells the server about its host's SR-IOV NICs, and how the server reads it back.

The agent sends `host_report(inventory, pf_names)` in its heartbeat (stored as `Host.agent["sriov"]`, like
Neutron's agent `configurations`); the server's port binding schedules a direct port onto a VF of that
report (`vfs_from_report` -> `kvnet.sriov.scheduler.pick_vf`). Only PFs named in the host's physnets are
reported: kvnet manages exactly those.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from kvnet.sriov.inventory import VF, Inventory

REPORT_KEY = "sriov"


def host_report(inventory: Inventory, pf_names: Collection[str], *, emulated: bool = False) -> dict[str, Any]:
    pfs = []
    for pf in inventory.pfs:
        if pf.name not in pf_names:
            continue
        pfs.append({"name": pf.name, "pci_address": pf.address, "vendor_device": pf.vendor_device,
                    "total_vfs": pf.total_vfs, "num_vfs": pf.num_vfs,
                    "vfs": [{"index": vf.index, "pci_address": vf.address, "vendor_device": vf.vendor_device,
                             "iommu_group": vf.iommu_group} for vf in pf.vfs]})
    return {"pfs": pfs, "emulated": emulated}


def vfs_from_report(report: dict[str, Any] | None) -> list[VF]:
    """The VFs of a stored report (none when the host never reported)."""
    if not report:
        return []
    return [VF(pf=pf["name"], index=int(vf["index"]), address=vf["pci_address"], vendor_device=vf["vendor_device"],
               driver=None, iommu_group=vf.get("iommu_group"), netdev=None)
            for pf in report.get("pfs", []) for vf in pf.get("vfs", [])]
