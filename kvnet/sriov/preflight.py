"""Pre-flight checks for SR-IOV on a host, from the source document's prerequisites (§5).

Each check is a named `CheckResult` (ok / warn / fail) with what was found and how to fix it, so
`kvnet sriov check` can print them and exit non-zero on any fail. Pure: input is an `Inventory`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kvnet.sriov.inventory import PF, Inventory

Status = Literal["ok", "warn", "fail"]
MIN_LINK_WIDTH = 8
GRUB_FIX = ('add the IOMMU to the kernel command line: in /etc/default/grub set '
            'GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt" (amd_iommu=on iommu=pt on AMD), '
            'then run update-grub and reboot')


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    fix: str = ""


def failed(results: Iterable[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == "fail"]


def preflight(inventory: Inventory, pf_names: Iterable[str] | None = None) -> list[CheckResult]:
    """Host checks, then per-PF checks for `pf_names` (default: every SR-IOV-capable NIC found)."""
    results = [check_iommu_cmdline(inventory), check_iommu_groups(inventory)]
    if pf_names is None:
        pfs = [pf for pf in inventory.pfs if pf.sriov_capable]
        if not pfs:
            results.append(CheckResult(
                "sriov_nic", "fail", "no SR-IOV capable NIC found (no PCI NIC has sriov_totalvfs > 0)",
                "install a capable NIC (e.g. Intel 82576/82599ES) and enable SR-IOV in the BIOS"))
        names = [pf.name for pf in pfs]
    else:
        names = list(pf_names)
    for name in names:
        pf = inventory.pf(name)
        if pf is None:
            results.append(CheckResult(f"{name}:present", "fail", f"{name} is not a PCI network device here",
                                       "check the host's physnets mapping (physnet -> interface)"))
            continue
        results.extend(check_pf(pf))
    return results


def check_iommu_cmdline(inventory: Inventory) -> CheckResult:
    flags = inventory.cmdline_flags()
    on = [f"{key}=on" for key in ("intel_iommu", "amd_iommu") if flags.get(key) == "on"]
    off = [f"{key}=off" for key in ("intel_iommu", "amd_iommu") if flags.get(key) == "off"]
    if off:
        return CheckResult("iommu_cmdline", "fail", f"the kernel command line disables the IOMMU ({off[0]})",
                           GRUB_FIX)
    if on:
        if flags.get("iommu") == "pt":
            return CheckResult("iommu_cmdline", "ok", f"{on[0]} iommu=pt on the kernel command line")
        return CheckResult("iommu_cmdline", "warn", f"{on[0]} set but not iommu=pt: host DMA is translated too",
                           "add iommu=pt to GRUB_CMDLINE_LINUX, update-grub, reboot")
    if inventory.iommu_units:
        return CheckResult("iommu_cmdline", "warn",
                           "no intel_iommu=on/amd_iommu=on on the command line, though the kernel enabled "
                           "an IOMMU by default", GRUB_FIX)
    return CheckResult("iommu_cmdline", "fail", "the IOMMU is not enabled on the kernel command line "
                       f"({inventory.cmdline or 'empty'})", GRUB_FIX)


def check_iommu_groups(inventory: Inventory) -> CheckResult:
    if inventory.iommu_units:
        return CheckResult("iommu_groups", "ok", f"IOMMU active: {', '.join(inventory.iommu_units)}")
    return CheckResult("iommu_groups", "fail", "/sys/class/iommu is empty: no IOMMU, so VFs cannot be "
                       "assigned to VMs (VFIO needs IOMMU groups)",
                       "enable VT-d / AMD-Vi in the BIOS; " + GRUB_FIX)


def check_pf(pf: PF) -> list[CheckResult]:
    results = [_model(pf), _capable(pf)]
    if pf.sriov_capable:
        results.append(_vfs_created(pf))
        if pf.vfs:
            results.append(_vf_groups(pf))
    results.append(_width(pf))
    return results


def _model(pf: PF) -> CheckResult:
    model = pf.model
    if model is None:
        return CheckResult(f"{pf.name}:model", "warn", f"{pf.name} ({pf.vendor_device}) is not a NIC kvnet "
                           "knows; SR-IOV may still work", "check the vendor's SR-IOV documentation")
    return CheckResult(f"{pf.name}:model", "ok", f"{pf.name} is an {model.name} ({model.speed_gbps} GbE, "
                       f"up to {model.max_vfs} VFs, driver {model.pf_driver})")


def _capable(pf: PF) -> CheckResult:
    if pf.sriov_capable:
        return CheckResult(f"{pf.name}:sriov", "ok", f"{pf.name} supports {pf.total_vfs} VFs")
    model = pf.model
    param = f"{model.pf_driver}.max_vfs={model.max_vfs}" if model else "igb.max_vfs=7"
    return CheckResult(f"{pf.name}:sriov", "fail",
                       f"{pf.name} reports no SR-IOV capability (sriov_totalvfs missing or 0)",
                       f"enable SR-IOV in the BIOS; older drivers need a module parameter such as {param} "
                       "on the kernel command line")


def _vfs_created(pf: PF) -> CheckResult:
    if pf.num_vfs > 0:
        return CheckResult(f"{pf.name}:vfs", "ok", f"{pf.num_vfs} of {pf.total_vfs} VFs created")
    return CheckResult(f"{pf.name}:vfs", "fail", f"{pf.name} has no VFs (sriov_numvfs is 0 of {pf.total_vfs})",
                       f"kvnet sriov enable --pf {pf.name} --vfs {pf.total_vfs}")


def _vf_groups(pf: PF) -> CheckResult:
    missing = [vf.index for vf in pf.vfs if vf.iommu_group is None]
    if missing:
        return CheckResult(f"{pf.name}:vf_iommu", "fail", f"VFs {missing} of {pf.name} have no IOMMU group",
                           "enable the IOMMU (see iommu_cmdline)")
    return CheckResult(f"{pf.name}:vf_iommu", "ok", f"all {len(pf.vfs)} VFs have an IOMMU group")


def _width(pf: PF) -> CheckResult:
    width = pf.link_width
    if width is None:
        return CheckResult(f"{pf.name}:pcie", "warn", f"{pf.name}'s PCIe link width is unknown")
    if width >= MIN_LINK_WIDTH:
        return CheckResult(f"{pf.name}:pcie", "ok", f"{pf.name} runs at PCIe x{width} {pf.link_speed or ''}")
    card = f" (the card can do x{pf.max_link_width})" if (pf.max_link_width or 0) > width else ""
    return CheckResult(f"{pf.name}:pcie", "warn", f"{pf.name} runs at PCIe x{width}{card}: below "
                       f"x{MIN_LINK_WIDTH}, packet rate will be limited", "move the NIC to an x8 or wider slot")
