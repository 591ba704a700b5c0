"""Inventory, preflight and VF creation against fake sysfs trees (tests/fixtures/sysfs_builder.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kvnet.errors import InvalidInput, NotFound
from kvnet.sriov.enable import set_num_vfs
from kvnet.sriov.inventory import scan
from kvnet.sriov.nics import KNOWN_NICS, lookup
from kvnet.sriov.preflight import CheckResult, failed, preflight

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import sysfs_builder


def checks(name: str, tmp_path: Path, pf_names: list[str] | None = None) -> dict[str, CheckResult]:
    return {r.name: r for r in preflight(scan(sysfs_builder.make(name, tmp_path)), pf_names)}


def test_scan_good_82576(tmp_path: Path) -> None:
    inv = scan(sysfs_builder.make("good_82576", tmp_path))
    assert [pf.name for pf in inv.pfs] == ["p2p1"]  # lo (virtual) and the VFs' own netdevs are not PFs
    pf = inv.pf("p2p1")
    assert (pf.address, pf.vendor_device, pf.driver) == ("0000:03:00.0", "8086:10c9", "igb")
    assert (pf.total_vfs, pf.num_vfs, pf.link_width, pf.link_speed) == (7, 7, 8, "5.0 GT/s PCIe")
    assert pf.model.name == "Intel 82576" and pf.iommu_group == 20
    assert [vf.index for vf in pf.vfs] == list(range(7))
    vf6 = pf.vfs[6]
    assert (vf6.address, vf6.vendor_device, vf6.driver, vf6.iommu_group, vf6.netdev) == (
        "0000:03:10.6", "8086:10ca", "igbvf", 27, "p2p1v6")
    assert inv.iommu_units == ("dmar0",)
    assert inv.cmdline_flags()["intel_iommu"] == "on"


def test_good_82576_passes_every_check(tmp_path: Path) -> None:
    results = checks("good_82576", tmp_path)
    assert {r.status for r in results.values()} == {"ok"}, results
    assert set(results) == {"iommu_cmdline", "iommu_groups", "p2p1:model", "p2p1:sriov", "p2p1:vfs",
                            "p2p1:vf_iommu", "p2p1:pcie"}


def test_82599_in_x4_slot_warns(tmp_path: Path) -> None:
    results = checks("ixgbe_82599_x4", tmp_path)
    pcie = results["p2p1:pcie"]
    assert pcie.status == "warn" and "x4" in pcie.message and "x8" in pcie.fix
    assert results["p2p1:model"].message.startswith("p2p1 is an Intel 82599ES")
    assert not failed(results.values())


def test_iommu_off_fails_with_grub_fix(tmp_path: Path) -> None:
    results = checks("iommu_off", tmp_path)
    assert {r.name for r in failed(results.values())} == {"iommu_cmdline", "iommu_groups", "p2p1:vf_iommu"}
    fix = results["iommu_cmdline"].fix
    assert 'GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt"' in fix and "update-grub" in fix
    assert "amd_iommu=on" in fix


def test_no_vfs_fails_with_enable_fix(tmp_path: Path) -> None:
    results = checks("no_vfs", tmp_path)
    [fail] = failed(results.values())
    assert fail.name == "p2p1:vfs" and fail.fix == "kvnet sriov enable --pf p2p1 --vfs 7"


def test_not_capable_nic(tmp_path: Path) -> None:
    root = sysfs_builder.make("not_capable", tmp_path)
    assert failed(preflight(scan(root)))[0].name == "sriov_nic"
    results = {r.name: r for r in preflight(scan(root), ["p2p1", "p9p9"])}
    assert results["p2p1:sriov"].status == "fail" and "BIOS" in results["p2p1:sriov"].fix
    assert results["p2p1:model"].status == "warn"  # 8086:1533 (I210) is not in the table
    assert results["p2p1:pcie"].status == "warn"
    assert results["p9p9:present"].status == "fail"


@pytest.mark.parametrize(("cmdline", "iommu", "status"), [
    ("ro amd_iommu=on iommu=pt", True, "ok"),
    ("ro intel_iommu=on", True, "warn"),
    ("ro", True, "warn"),  # the kernel turned the IOMMU on by default
    ("ro intel_iommu=off", True, "fail"),
])
def test_iommu_cmdline_variants(cmdline: str, iommu: bool, status: str, tmp_path: Path) -> None:
    root = sysfs_builder.build(tmp_path / "h", sysfs_builder.FakeHost(cmdline=cmdline, iommu=iommu))
    assert preflight(scan(root))[0].status == status


def test_set_num_vfs_from_zero(tmp_path: Path) -> None:
    root = sysfs_builder.make("no_vfs", tmp_path)
    assert set_num_vfs(root, "p2p1", 7) == [7]
    assert scan(root).pf("p2p1").num_vfs == 7
    assert set_num_vfs(root, "p2p1", 7) == []  # already there: no write


def test_set_num_vfs_goes_through_zero(tmp_path: Path) -> None:
    root = sysfs_builder.make("good_82576", tmp_path)
    assert set_num_vfs(root, "p2p1", 4) == [0, 4]  # the kernel refuses nonzero -> nonzero
    assert (root / "sys/class/net/p2p1/device/sriov_numvfs").read_text() == "4\n"
    assert set_num_vfs(root, "p2p1", 0) == [0]


def test_set_num_vfs_validates(tmp_path: Path) -> None:
    root = sysfs_builder.make("good_82576", tmp_path)
    with pytest.raises(InvalidInput, match="supports 0-7 VFs, not 8") as exc:
        set_num_vfs(root, "p2p1", 8)
    assert exc.value.field == "vfs"
    with pytest.raises(NotFound):
        set_num_vfs(root, "lo", 1)
    with pytest.raises(InvalidInput, match="not SR-IOV capable"):
        set_num_vfs(sysfs_builder.make("not_capable", tmp_path), "p2p1", 1)


def test_known_nic_table() -> None:
    assert lookup("8086:10C9").vf_id == "8086:10ca"
    assert lookup("8086:10fb").vf_id == "8086:10ed"
    assert lookup("15b3:101b").vf_id == "15b3:101c"
    assert lookup("1af4:1041") is None
    assert len({nic.pf_id for nic in KNOWN_NICS}) == len(KNOWN_NICS)
