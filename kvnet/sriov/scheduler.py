"""Pick a free VF for a direct port on a host (pure: no I/O, the caller passes what is in use)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from kvnet.errors import Exhausted
from kvnet.sriov.inventory import VF, Inventory


@dataclass(frozen=True)
class VFChoice:
    pf: str
    vf_index: int
    pci_address: str


def pick_vf(inventory: Inventory | Sequence[VF], used: Collection[str], physnet: str,
            host_physnets: Mapping[str, str], host: str = "this host") -> VFChoice:
    """The lowest-index free VF on the PF that carries `physnet` on this host.

    `used` holds the PCI addresses of VFs already bound to ports; `host_physnets` is the host's
    physnet -> interface mapping (`Host.physnets`). VFs without an IOMMU group cannot be given to a
    VM and are skipped. Raises `Exhausted` naming host, physnet and PF.
    """
    pf = host_physnets.get(physnet)
    if pf is None:
        raise Exhausted(f"host {host} has no interface for physnet {physnet} "
                        f"(its physnets: {', '.join(sorted(host_physnets)) or 'none'})", "physnet")
    vfs = inventory.vfs() if isinstance(inventory, Inventory) else list(inventory)
    on_pf = sorted((vf for vf in vfs if vf.pf == pf), key=lambda vf: vf.index)
    if not on_pf:
        raise Exhausted(f"host {host}: PF {pf} (physnet {physnet}) has no VFs; "
                        f"create them with `kvnet sriov enable --pf {pf} --vfs N`", "physnet")
    usable = [vf for vf in on_pf if vf.iommu_group is not None]
    for vf in usable:
        if vf.address not in used:
            return VFChoice(pf=pf, vf_index=vf.index, pci_address=vf.address)
    detail = f"all {len(usable)} usable VFs are in use" if usable else "no VF has an IOMMU group"
    raise Exhausted(f"host {host}: no free VF on PF {pf} for physnet {physnet} ({detail})", "physnet")
