"""Create VFs on a PF by writing sriov_numvfs (what `kvnet sriov enable --pf X --vfs N` does).

The kernel refuses to change a nonzero VF count directly (EBUSY): it must go to 0 first, which
destroys the existing VFs — so changing the count on a PF with VMs attached cuts them off.
The value does not survive a reboot; persist it with a udev rule or the driver's module parameter.
"""

from __future__ import annotations

from pathlib import Path

from kvnet.errors import InvalidInput, NotFound
from kvnet.sriov import sysfs


def set_num_vfs(root: str | Path, pf: str, n: int) -> list[int]:
    """Make `pf` have `n` VFs; returns the values written, in order ([] when already `n`)."""
    fs = sysfs.Sysfs(Path(root))
    function = fs.pci_function(pf)
    if function is None:
        raise NotFound(f"{pf} is not a PCI network device on this host", "pf")
    total = sysfs.read_int(function / "sriov_totalvfs") or 0
    if total == 0:
        raise InvalidInput(f"{pf} is not SR-IOV capable (sriov_totalvfs is 0 or missing): enable SR-IOV "
                           "in the BIOS or the driver", "pf")
    if not 0 <= n <= total:
        raise InvalidInput(f"{pf} supports 0-{total} VFs, not {n}", "vfs")
    path = fs.numvfs_path(pf)
    current = sysfs.read_int(path) or 0
    if current == n:
        return []
    writes = [0, n] if current and n else [n]
    for value in writes:
        path.write_text(f"{value}\n")
    return writes
