"""pick_vf: the lowest free VF on the physnet's PF, with clear errors when there is none."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kvnet.errors import Exhausted
from kvnet.sriov.inventory import VF, scan
from kvnet.sriov.scheduler import VFChoice, pick_vf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import sysfs_builder

PHYSNETS = {"physnet2": "p2p1", "physnet1": "eth1"}


@pytest.fixture
def inventory(tmp_path: Path):
    return scan(sysfs_builder.make("good_82576", tmp_path))


def test_picks_lowest_free(inventory) -> None:
    assert pick_vf(inventory, set(), "physnet2", PHYSNETS) == VFChoice("p2p1", 0, "0000:03:10.0")
    used = {"0000:03:10.0", "0000:03:10.1", "0000:03:10.3"}
    assert pick_vf(inventory, used, "physnet2", PHYSNETS) == VFChoice("p2p1", 2, "0000:03:10.2")


def test_accepts_a_vf_list(inventory) -> None:
    vfs = list(reversed(inventory.vfs()))
    assert pick_vf(vfs, set(), "physnet2", PHYSNETS).vf_index == 0


def test_exhausted_names_host_physnet_and_pf(inventory) -> None:
    used = {vf.address for vf in inventory.vfs()}
    with pytest.raises(Exhausted) as exc:
        pick_vf(inventory, used, "physnet2", PHYSNETS, host="cn1")
    assert str(exc.value).endswith("host cn1: no free VF on PF p2p1 for physnet physnet2 "
                                   "(all 7 usable VFs are in use)")


def test_unknown_physnet_and_pf_without_vfs(inventory) -> None:
    with pytest.raises(Exhausted, match="host cn1 has no interface for physnet physnet9"):
        pick_vf(inventory, set(), "physnet9", PHYSNETS, host="cn1")
    with pytest.raises(Exhausted, match=r"PF eth1 \(physnet physnet1\) has no VFs"):
        pick_vf(inventory, set(), "physnet1", PHYSNETS, host="cn1")


def test_skips_vfs_without_iommu_group() -> None:
    vfs = [VF("p2p1", 0, "0000:03:10.0", "8086:10ca", "igbvf", None, None),
           VF("p2p1", 1, "0000:03:10.1", "8086:10ca", "vfio-pci", 31, None)]
    assert pick_vf(vfs, set(), "physnet2", PHYSNETS).vf_index == 1
    with pytest.raises(Exhausted, match="no VF has an IOMMU group"):
        pick_vf(vfs[:1], set(), "physnet2", PHYSNETS)
