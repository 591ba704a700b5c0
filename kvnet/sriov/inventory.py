"""What a host has for SR-IOV: the kernel command line, the IOMMU, and every PCI NIC with its VFs.

`scan(root)` reads it once (see `kvnet.sriov.sysfs`); everything after that — preflight checks, VF
scheduling, OpenStack config — is a pure function of the resulting `Inventory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kvnet.sriov import sysfs
from kvnet.sriov.nics import NicModel, lookup


@dataclass(frozen=True)
class VF:
    pf: str  # the PF's net device name, e.g. p2p1
    index: int  # N in `ip link set p2p1 vf N`
    address: str  # PCI address, e.g. 0000:03:10.1
    vendor_device: str  # e.g. 8086:10ca
    driver: str | None  # igbvf, vfio-pci, or None when unbound
    iommu_group: int | None
    netdev: str | None  # the VF's own net device on the host, when a VF driver is bound


@dataclass(frozen=True)
class PF:
    name: str
    address: str
    vendor_device: str
    driver: str | None
    total_vfs: int  # 0: the function has no SR-IOV capability (or it is disabled in the BIOS)
    num_vfs: int
    vfs: tuple[VF, ...]
    link_width: int | None
    max_link_width: int | None
    link_speed: str | None
    iommu_group: int | None

    @property
    def model(self) -> NicModel | None:
        return lookup(self.vendor_device)

    @property
    def sriov_capable(self) -> bool:
        return self.total_vfs > 0


@dataclass(frozen=True)
class Inventory:
    cmdline: str
    iommu_units: tuple[str, ...]
    pfs: tuple[PF, ...]

    def cmdline_flags(self) -> dict[str, str]:
        """`intel_iommu=on iommu=pt quiet` -> {'intel_iommu': 'on', 'iommu': 'pt', 'quiet': ''}."""
        flags = {}
        for word in self.cmdline.split():
            key, _, value = word.partition("=")
            flags[key] = value
        return flags

    def pf(self, name: str) -> PF | None:
        return next((pf for pf in self.pfs if pf.name == name), None)

    def vfs(self) -> list[VF]:
        return [vf for pf in self.pfs for vf in pf.vfs]


def scan(root: str | Path = "/") -> Inventory:
    """Read the inventory of the host (or fixture tree) at `root`."""
    fs = sysfs.Sysfs(Path(root))
    pfs = []
    for ifname in fs.net_devices():
        function = fs.pci_function(ifname)
        if function is None or (function / "physfn").exists():
            continue  # a virtual device, or a VF's own netdev (listed under its PF instead)
        pfs.append(_read_pf(ifname, function))
    return Inventory(cmdline=fs.cmdline(), iommu_units=tuple(fs.iommu_units()), pfs=tuple(pfs))


def _vendor_device(function: Path) -> str:
    return f"{sysfs.read_hex_id(function / 'vendor')}:{sysfs.read_hex_id(function / 'device')}"


def _read_pf(ifname: str, function: Path) -> PF:
    vfs = tuple(
        VF(pf=ifname, index=index, address=vf_dir.name, vendor_device=_vendor_device(vf_dir),
           driver=sysfs.link_name(vf_dir / "driver"), iommu_group=sysfs.iommu_group(vf_dir),
           netdev=next(iter(sysfs.netdevs(vf_dir)), None))
        for index, vf_dir in sysfs.virtfns(function)
    )
    return PF(
        name=ifname, address=function.name, vendor_device=_vendor_device(function),
        driver=sysfs.link_name(function / "driver"),
        total_vfs=sysfs.read_int(function / "sriov_totalvfs") or 0,
        num_vfs=sysfs.read_int(function / "sriov_numvfs") or 0, vfs=vfs,
        link_width=sysfs.link_width(sysfs.read_text(function / "current_link_width")),
        max_link_width=sysfs.link_width(sysfs.read_text(function / "max_link_width")),
        link_speed=sysfs.read_text(function / "current_link_speed"),
        iommu_group=sysfs.iommu_group(function),
    )
