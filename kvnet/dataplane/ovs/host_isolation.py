"""Keep the host's own IP stack off kvnet's OVS ports under the userspace datapath (`netdev`).

The kernel datapath takes a port's frames away from the host stack (its rx handler). The userspace
datapath reads a kernel device (VM tap, router leg host end, physnet NIC) through an AF_PACKET socket,
and the kernel still hands every frame to its own stack too: the host answers a VM's ARP for the
host's addresses and, forwarding on, routes what the VM sends to its MAC -- a tenant reaching the
hypervisor and the underlay. One nft `netdev` ingress chain with policy drop per such device ends it:
AF_PACKET sees a frame before the ingress hook, so OVS still gets everything and the kernel nothing.

The table `netdev kvnet_ovs` of the host namespace is kvnet's. Its chains are named `in-<device>` and
have no rule, so the chain names say everything: observe lists them, the diff adds and deletes single
chains in one nft transaction (a new VM does not rewrite every other port's chain). Chains only for
ports OVS has opened (ofport > 0: the device exists, and older kernels refuse a hook on a missing
one), so a port gets its chain in the pass that makes it ACTIVE; one whose device is gone is deleted.
Under the kernel datapath nothing is wanted, and a table left from `netdev` is deleted: its drop
chains would run before the kernel datapath and cut the VMs off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from kvnet.dataplane.ovs.state import DesiredDb
from kvnet.sys.cmd import CommandError, run

TABLE = "kvnet_ovs"  # family netdev
ISOLATING_DATAPATH = "netdev"
_CHAIN = re.compile(r"^\s*chain in-(\S+) \{", re.MULTILINE)


class IsolationChanges(NamedTuple):
    add: tuple[str, ...] = ()  # devices
    delete: tuple[str, ...] = ()
    drop_table: bool = False  # nothing wanted and a table is there

    @property
    def empty(self) -> bool:
        return not (self.add or self.delete or self.drop_table)


def wanted(db: DesiredDb, datapath_type: str, ofports: Mapping[str, int]) -> set[str]:
    """The devices that need a chain: kvnet's OVS ports that are kernel devices (VM taps, leg host ends,
    physnet NICs; not tunnel or patch ports, which exist only inside OVS) and that OVS has opened."""
    if datapath_type != ISOLATING_DATAPATH:
        return set()
    return {port.name for port in db.ports.values() if port.type == "" and ofports.get(port.name, -1) > 0}


def observe(host_netns: str | None) -> set[str] | None:
    """Devices with a chain in the table; None when there is no table. A listing that fails otherwise
    raises `CommandError` (unknown is not absent)."""
    try:
        listing = run(["nft", "list", "table", "netdev", TABLE], netns=host_netns, check=False)
    except FileNotFoundError:  # a kernel-datapath host without nft has no table either
        return None
    if listing.returncode == 0:
        return set(_CHAIN.findall(listing.stdout))
    if "No such file or directory" in listing.stderr:
        return None
    raise CommandError(listing.args, listing.returncode, listing.stderr)


def diff(devices: set[str], observed: set[str] | None) -> IsolationChanges:
    have = observed or set()
    return IsolationChanges(tuple(sorted(devices - have)), tuple(sorted(have - devices)),
                            drop_table=not devices and observed is not None)


def script(changes: IsolationChanges) -> str:
    """One nft transaction: the table (created if missing), new chains, chains to delete."""
    if changes.drop_table:
        return f"delete table netdev {TABLE}\n"
    lines = [f"table netdev {TABLE} {{}}"]
    lines += [f'add chain netdev {TABLE} in-{dev} {{ type filter hook ingress device "{dev}" priority filter; '
              f"policy drop; }}" for dev in changes.add]
    lines += [f"delete chain netdev {TABLE} in-{dev}" for dev in changes.delete]
    return "\n".join(lines) + "\n"


def reconcile(devices: set[str], host_netns: str | None) -> tuple[IsolationChanges, str | None]:
    """Chains for exactly `devices` (see `wanted`); returns (what was changed, the error nft gave).
    Raises CommandError when the table cannot be read."""
    changes = diff(devices, observe(host_netns))
    if changes.empty:
        return changes, None
    proc = run(["nft", "-f", "-"], netns=host_netns, input=script(changes), check=False)
    if proc.returncode != 0:
        return changes, proc.stderr.strip() or f"nft exited {proc.returncode}"
    return changes, None
