"""Where an agent's SR-IOV NICs come from: the host itself, or the lab's emulation of one.

- `HostSriov` (production): `scan(root)` of sysfs and `NetlinkVFDriver` (`ip link set PF vf N …`).
- `EmulatedSriov` (lab only): a JSON description written by `kvnet.lab.sriov` — which PFs, how many VFs,
  which namespace — turned into the same `Inventory` shape (with made-up PCI addresses in domain ffff, so
  they can never be mistaken for real ones) and `EmulatedVFDriver`. A missing file means no SR-IOV NIC.

The agent above them (`kvnet.agent.vf`) does not know which one it has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from kvnet.sriov.emulated import EmulatedVFDriver
from kvnet.sriov.inventory import PF, VF, Inventory, scan
from kvnet.sriov.vf import NetlinkVFDriver, VFDriver

EMULATED_PF_ID = "8086:10c9"  # shaped like an Intel 82576 (the source document's NIC)
EMULATED_VF_ID = "8086:10ca"


class SriovSource(Protocol):
    emulated: bool

    def inventory(self) -> Inventory: ...

    def driver(self, pf: str) -> VFDriver: ...


class HostSriov:
    """The real host: sysfs under `root` and netlink in `netns` (None: the agent's own namespace)."""

    emulated = False

    def __init__(self, root: str | Path = "/", netns: str | None = None) -> None:
        self.root = Path(root)
        self._driver = NetlinkVFDriver(netns)

    def inventory(self) -> Inventory:
        return scan(self.root)

    def driver(self, pf: str) -> VFDriver:
        return self._driver


class EmulatedSriov:
    """The lab's emulated PFs, described by `config_path` (see module docstring)."""

    emulated = True

    def __init__(self, config_path: str | Path) -> None:
        self.config_path = Path(config_path)
        self._drivers: dict[str, EmulatedVFDriver] = {}

    def _config(self) -> dict:
        try:
            return json.loads(self.config_path.read_text())
        except FileNotFoundError:
            return {"pfs": []}

    def inventory(self) -> Inventory:
        pfs = []
        for bus, spec in enumerate(self._config()["pfs"], start=1):
            num = int(spec["num_vfs"])
            vfs = tuple(VF(pf=spec["name"], index=i, address=emulated_vf_address(bus, i),
                           vendor_device=EMULATED_VF_ID, driver=None, iommu_group=1000 * bus + i, netdev=None)
                        for i in range(num))
            pfs.append(PF(name=spec["name"], address=f"ffff:{bus:02x}:00.0", vendor_device=EMULATED_PF_ID,
                          driver="emulated", total_vfs=num, num_vfs=num, vfs=vfs, link_width=None,
                          max_link_width=None, link_speed=None, iommu_group=1000 * bus))
        return Inventory(cmdline="", iommu_units=("emulated",), pfs=tuple(pfs))

    def driver(self, pf: str) -> VFDriver:
        if pf not in self._drivers:
            config = self._config()
            spec = next((p for p in config["pfs"] if p["name"] == pf), None)
            if spec is None:
                raise KeyError(f"no emulated PF {pf}")
            self._drivers[pf] = EmulatedVFDriver(config["netns"], spec["state"], int(spec["num_vfs"]))
        return self._drivers[pf]


def emulated_vf_address(bus: int, index: int) -> str:
    """PCI address of emulated VF `index` on emulated bus `bus`: domain ffff, 8 functions per device."""
    return f"ffff:{bus:02x}:{1 + index // 8:02x}.{index % 8}"


def sriov_source(emulation_config: str | Path | None) -> SriovSource:
    return EmulatedSriov(emulation_config) if emulation_config else HostSriov()
