"""The Linux driver tests' lab (linux_fixtures) with a choice of dataplane per host.

`dataplane_lab(["ovs", "linux", ...])` builds the same namespaces as `linux_fixtures.lab` and, on
each "ovs" host, starts its own ovsdb-server + ovs-vswitchd (kvnet.lab.ovs, run directory under a
temporary directory, supervised by pid) with the tunnel IP moved onto br-phy. Everything is stopped
and removed on exit, also when the test failed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from linux_fixtures import UNDERLAY_MTU, Lab, Vm, lab

from kvnet.dataplane import ReconcileResult
from kvnet.dataplane.linux import LinuxDriver
from kvnet.dataplane.ovs import OvsDriver
from kvnet.lab import ovs
from kvnet.lab.procs import Supervisor
from kvnet.lab.state import StateFile
from kvnet.plan import HostPlan
from kvnet.sys import netns
from kvnet.sys.cmd import run

DRIVERS = ("linux", "ovs")


@dataclass
class DataplaneLab:
    lab: Lab
    kinds: list[str]
    procs: Supervisor
    ovs: dict[int, ovs.OvsInstance] = field(default_factory=dict)
    drivers: dict[int, OvsDriver] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return self.lab.hosts

    @property
    def vms(self) -> dict[str, str]:
        return self.lab.vms

    def add_vm(self, vm: Vm, mtu: int) -> None:
        self.lab.add_vm(vm, mtu)
        if self.kinds[vm.host] == "ovs":  # OVS userspace + veth: checksums must be done in the VM
            run(["ethtool", "-K", "eth0", "tx", "off"], netns=self.lab.vms[vm.port_id])

    def driver(self, host: int, *, fresh: bool = False) -> LinuxDriver | OvsDriver:
        """The host's driver; `fresh` gives a new instance (what an agent restart does)."""
        if self.kinds[host] == "linux":
            return LinuxDriver(self.hosts[host])
        if fresh:
            old = self.drivers.pop(host, None)
            if old is not None:
                old.close()
        if host not in self.drivers:
            inst = self.ovs[host]
            self.drivers[host] = OvsDriver(inst.rundir, host_netns=inst.netns, datapath_type=ovs.DATAPATH)
        return self.drivers[host]

    def reconcile(self, host: int, plan: HostPlan, *, fresh: bool = False) -> ReconcileResult:
        return self.driver(host, fresh=fresh).reconcile(plan)

    def reconcile_all(self, plans: list[HostPlan], *, fresh: bool = False) -> int:
        total = 0
        for host, plan in enumerate(plans):
            result = self.reconcile(host, plan, fresh=fresh)
            assert result.ok, result.errors
            total += result.total_changes
        return total

    def add_physnet(self, nic: str = "ph0") -> str:
        """A physnet: `nic` in every host, all on one plain Linux bridge `pw` (passes 802.1Q tags) in a
        namespace of its own, which is returned (for captures)."""
        wire = self.lab.ns("w")
        netns.add(wire)
        run(["ip", "-n", wire, "link", "add", "pw", "type", "bridge"])
        run(["ip", "-n", wire, "link", "set", "pw", "up"])
        for i, host in enumerate(self.hosts):
            netns.add_veth(nic, host, f"w{i + 1}", wire)
            run(["ip", "-n", wire, "link", "set", f"w{i + 1}", "master", "pw"])
        return wire

    def close(self) -> None:
        for driver in self.drivers.values():
            driver.close()
        self.drivers.clear()


@contextmanager
def dataplane_lab(kinds: list[str]) -> Iterator[DataplaneLab]:
    rundir_root = Path(tempfile.mkdtemp(prefix="kvtO", dir="/tmp"))  # unix socket paths stay short
    procs = Supervisor(StateFile(rundir_root))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, rundir_root, ignore_errors=True)
        the_lab = stack.enter_context(lab(len(kinds)))
        stack.callback(procs.stop_all)  # runs before the namespaces go (ExitStack is LIFO)
        dlab = DataplaneLab(the_lab, list(kinds), procs)
        stack.callback(dlab.close)
        for i, kind in enumerate(kinds):
            if kind == "ovs":
                inst = ovs.start(procs, f"h{i + 1}", the_lab.hosts[i], rundir_root / f"h{i + 1}")
                ovs.add_tunnel_endpoint(inst, "ul0", f"{the_lab.tunnel_ip(i)}/24", UNDERLAY_MTU)
                ovs.checksum_before(the_lab.underlay, f"h{i + 1}")
                dlab.ovs[i] = inst
        yield dlab
