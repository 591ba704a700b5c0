"""Read (and, for sriov_numvfs, write) the kernel's view of PCI NICs under a sysfs root.

Every path is taken relative to `root` ("/" on a host; tests pass a fixture tree made by
`tests/fixtures/sysfs_builder.py`), so nothing here ever needs the real /sys to be tested. sysfs
symlinks are relative (`device -> ../../../0000:03:00.0`), which is what lets a fixture tree
resolve inside itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VIRTFN_RE = re.compile(r"^virtfn(\d+)$")


@dataclass(frozen=True)
class Sysfs:
    """A sysfs + procfs root: `Sysfs(Path("/"))` on a host, a fixture directory in tests."""

    root: Path

    @property
    def class_net(self) -> Path:
        return self.root / "sys/class/net"

    def cmdline(self) -> str:
        return read_text(self.root / "proc/cmdline") or ""

    def iommu_units(self) -> list[str]:
        """Entries of /sys/class/iommu (dmar0.. on Intel, ivhd0.. on AMD): empty when the IOMMU is off."""
        path = self.root / "sys/class/iommu"
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def net_devices(self) -> list[str]:
        return sorted(p.name for p in self.class_net.iterdir()) if self.class_net.is_dir() else []

    def pci_function(self, ifname: str) -> Path | None:
        """The PCI function directory behind a net device, or None for virtual devices (veth, bridge)."""
        link = self.class_net / ifname / "device"
        return link.resolve() if link.exists() else None

    def numvfs_path(self, ifname: str) -> Path:
        return self.class_net / ifname / "device" / "sriov_numvfs"


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def read_int(path: Path) -> int | None:
    """An integer attribute; '0x8086' style hex too; None when absent or unreadable."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text, 0) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def read_hex_id(path: Path) -> str:
    """vendor/device files hold '0x8086'; return '8086' ('' when absent)."""
    text = read_text(path) or ""
    return text.lower().removeprefix("0x")


def link_name(path: Path) -> str | None:
    """The last component of a symlink's target (driver -> .../drivers/igb gives 'igb')."""
    return Path(path.readlink()).name if path.is_symlink() else None


def iommu_group(function: Path) -> int | None:
    name = link_name(function / "iommu_group")
    return int(name) if name and name.isdigit() else None


def virtfns(function: Path) -> list[tuple[int, Path]]:
    """(index, VF function directory) for each virtfnN link of a PF, by index."""
    found = []
    for entry in function.iterdir():
        match = VIRTFN_RE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.resolve()))
    return sorted(found)


def netdevs(function: Path) -> list[str]:
    """Net device names a PCI function exposes (none for a VF bound to vfio-pci)."""
    path = function / "net"
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def link_width(text: str | None) -> int | None:
    """'8' or 'x8' -> 8."""
    if not text:
        return None
    text = text.lower().removeprefix("x")
    return int(text) if text.isdigit() else None
