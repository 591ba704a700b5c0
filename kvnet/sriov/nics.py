"""SR-IOV NICs kvnet knows, by PCI vendor:device id (ids checked against the pci.ids database).

`max_vfs` is the usual per-port maximum with the in-tree driver; the authoritative number on a host
is the PF's `sriov_totalvfs`, which the preflight checks read. The table only names the model and
lets preflight warn about NICs nobody has tried with kvnet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NicModel:
    name: str
    pf_id: str  # vendor:device of the physical function
    vf_id: str  # vendor:device of its virtual functions
    max_vfs: int
    speed_gbps: int
    pf_driver: str
    vf_driver: str


KNOWN_NICS: tuple[NicModel, ...] = (
    NicModel("Intel 82576", "8086:10c9", "8086:10ca", 7, 1, "igb", "igbvf"),
    NicModel("Intel 82599ES", "8086:10fb", "8086:10ed", 63, 10, "ixgbe", "ixgbevf"),
    NicModel("Intel X710", "8086:1572", "8086:154c", 64, 10, "i40e", "iavf"),
    NicModel("Intel XL710", "8086:1583", "8086:154c", 64, 40, "i40e", "iavf"),
    NicModel("Intel E810-C QSFP", "8086:1592", "8086:1889", 256, 100, "ice", "iavf"),
    NicModel("Intel E810-C SFP", "8086:1593", "8086:1889", 256, 25, "ice", "iavf"),
    NicModel("Mellanox ConnectX-4", "15b3:1013", "15b3:1014", 127, 100, "mlx5_core", "mlx5_core"),
    NicModel("Mellanox ConnectX-5", "15b3:1017", "15b3:1018", 127, 100, "mlx5_core", "mlx5_core"),
    NicModel("Mellanox ConnectX-6", "15b3:101b", "15b3:101c", 127, 200, "mlx5_core", "mlx5_core"),
)
BY_PF_ID: dict[str, NicModel] = {nic.pf_id: nic for nic in KNOWN_NICS}


def lookup(vendor_device: str) -> NicModel | None:
    """The model for a PF id like '8086:10c9' (case-insensitive), or None."""
    return BY_PF_ID.get(vendor_device.lower())
