"""One Open vSwitch per lab host: ovsdb-server + ovs-vswitchd inside the host's namespace.

Every file of an instance lives in its own run directory (`<labdir>/ovs/<host>/`: conf.db, db.sock,
the unixctl sockets, pidfiles, `<bridge>.mgmt`), given explicitly on the command line and as
OVS_RUNDIR; nothing touches /var/run/openvswitch or the Debian service. Both daemons run in the
foreground under the lab's Supervisor (own process group, recorded in state.json), so `lab down`
stops them like any other lab process. vswitchd must run inside the namespace: it opens the host's
devices and follows the namespace's routes for tunnels.

The datapath is userspace (`netdev`: this kernel has no openvswitch module). Native tunnels in the
userspace datapath leave through an OVS bridge, so the host's tunnel IP moves from the `ul0` veth
onto the internal port of `br-phy`, which holds `ul0` (see /work/shared/facts/ovs-userspace.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kvnet.lab import names as n
from kvnet.lab.procs import POLL_S, Supervisor
from kvnet.lab.spec import LabSpec, default_spec
from kvnet.sys.cmd import run

if TYPE_CHECKING:
    from kvnet.lab.lab import Lab

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
DATAPATH = "netdev"
UNDERLAY_BRIDGE = "br-phy"
READY_S = 15.0


@dataclass(frozen=True)
class OvsInstance:
    name: str  # the host; processes are recorded as ovsdb-<name> and vswitchd-<name>
    netns: str
    rundir: Path

    @property
    def db_endpoint(self) -> str:
        return f"unix:{self.rundir / 'db.sock'}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this instance (ovs-ofctl/ovs-vsctl default paths, the agent)."""
        return {**os.environ, "OVS_RUNDIR": str(self.rundir), "OVS_DBDIR": str(self.rundir),
                "OVS_LOGDIR": str(self.rundir)}

    def vsctl(self, *args: str) -> str:
        return run(["ovs-vsctl", f"--db={self.db_endpoint}", "--timeout=10", *args]).stdout

    def appctl(self, daemon: str, *args: str) -> str:
        return run(["ovs-appctl", "-t", str(self.rundir / f"{daemon}.ctl"), *args]).stdout


def ovsdb_proc(name: str) -> str:
    return f"ovsdb-{name}"


def vswitchd_proc(name: str) -> str:
    return f"vswitchd-{name}"


def start(procs: Supervisor, name: str, netns: str, rundir: Path) -> OvsInstance:
    """Create the database and start both daemons in `netns`; return once vswitchd answers."""
    inst = OvsInstance(name, netns, rundir)
    rundir.mkdir(parents=True, exist_ok=True)
    run(["ovsdb-tool", "create", str(rundir / "conf.db"), str(SCHEMA)])
    procs.start(ovsdb_proc(name), [
        "ovsdb-server", str(rundir / "conf.db"), f"--remote=punix:{rundir / 'db.sock'}",
        f"--unixctl={rundir / 'ovsdb-server.ctl'}", f"--pidfile={rundir / 'ovsdb-server.pid'}",
        "-vconsole:warn"], netns=netns, env=inst.env)
    _wait(procs, ovsdb_proc(name), lambda: (rundir / "db.sock").exists())
    run(["ovs-vsctl", f"--db={inst.db_endpoint}", "--no-wait", "init"])
    start_vswitchd(procs, inst)
    return inst


def start_vswitchd(procs: Supervisor, inst: OvsInstance) -> None:
    procs.start(vswitchd_proc(inst.name), [
        "ovs-vswitchd", inst.db_endpoint, f"--unixctl={inst.rundir / 'ovs-vswitchd.ctl'}",
        f"--pidfile={inst.rundir / 'ovs-vswitchd.pid'}", "-vconsole:warn"], netns=inst.netns, env=inst.env)
    _wait(procs, vswitchd_proc(inst.name), lambda: _answers(inst))


def restart_vswitchd(procs: Supervisor, inst: OvsInstance) -> None:
    """Stop and start ovs-vswitchd (it comes back with its OVSDB config and without any flow)."""
    procs.stop(vswitchd_proc(inst.name))
    start_vswitchd(procs, inst)


def stop(procs: Supervisor, inst: OvsInstance) -> None:
    procs.stop(vswitchd_proc(inst.name))
    procs.stop(ovsdb_proc(inst.name))


def add_tunnel_endpoint(inst: OvsInstance, nic: str, cidr: str, mtu: int) -> None:
    """Move `cidr` from `nic` onto br-phy's internal port; `nic` becomes a port of br-phy (NORMAL switching).

    OVS userspace reads `nic` through a socket, so the kernel still sees its frames too and would answer
    ARP for the tunnel IP from `nic`'s MAC as well as from br-phy's. A peer whose tunnel neighbour cache
    kept `nic`'s MAC sends its VXLAN frames where OVS does not end tunnels (the path stays dead until the
    cache expires, a CI flake). With ARP off on `nic`, only br-phy answers, as on a kernel datapath.
    """
    inst.vsctl("add-br", UNDERLAY_BRIDGE, "--", "set", "bridge", UNDERLAY_BRIDGE, f"datapath_type={DATAPATH}",
               "external_ids:kvnet-lab=underlay", "--", "add-port", UNDERLAY_BRIDGE, nic,
               "--", "set", "interface", UNDERLAY_BRIDGE, f"mtu_request={mtu}")
    lines = [f"addr flush dev {nic}", f"link set {nic} arp off",
             f"addr add {cidr} dev {UNDERLAY_BRIDGE}", f"link set {UNDERLAY_BRIDGE} up"]
    run(["ip", "-n", inst.netns, "-batch", "-"], input="\n".join(lines) + "\n")


def _answers(inst: OvsInstance) -> bool:
    ctl = inst.rundir / "ovs-vswitchd.ctl"
    return ctl.exists() and run(["ovs-appctl", "-t", str(ctl), "version"], check=False).returncode == 0


def _wait(procs: Supervisor, proc: str, ready: object) -> None:
    deadline = time.monotonic() + READY_S
    while not ready():  # type: ignore[operator]
        if not procs.alive(proc):
            raise RuntimeError(f"{proc} exited while starting:\n{procs.log_tail(proc)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc} not ready after {READY_S}s:\n{procs.log_tail(proc)}")
        time.sleep(POLL_S)


# -- a lab host -----------------------------------------------------------------------------------
def host_rundir(labdir: Path, host: str) -> Path:
    return labdir / "ovs" / host


def host_instance(lab: Lab, host: str) -> OvsInstance:
    return OvsInstance(host, lab.host_ns(host), host_rundir(lab.dir, host))


def start_for_host(lab: Lab, host: str, tunnel_ip: str) -> OvsInstance:
    """OVS for a lab host whose dataplane is "ovs", with its tunnel endpoint on br-phy."""
    inst = start(lab.procs, host, lab.host_ns(host), host_rundir(lab.dir, host))
    add_tunnel_endpoint(inst, n.HOST_UL_IF, f"{tunnel_ip}/24", n.UNDERLAY_MTU)
    checksum_before(n.ul_ns(lab.name), n.ul_port(host))
    checksum_before(n.ext_ns(lab.name), n.ext_port(host))
    return inst


def checksum_before(netns: str, switch_port: str) -> None:
    """Frames the lab's switch sends into an OVS host leave with complete checksums.

    A Linux sender (a host's VXLAN device, the "internet" server) leaves UDP/TCP checksums to the
    veth "hardware", and the partial checksum crosses veths and bridges as metadata; OVS userspace
    reads raw frames, finds a wrong checksum and drops the packet (a Linux host's VXLAN to an OVS host
    died this way). Without tx checksum offload on the switch port towards the OVS host, the kernel
    completes the checksum when it forwards the frame there.
    """
    run(["ethtool", "-K", switch_port, "tx", "off"], netns=netns)


def agent_env(lab: Lab, host: str) -> dict[str, str] | None:
    """The environment of an agent on an OVS host (which instance, which datapath); None elsewhere."""
    if lab.hosts()[host].get("dataplane") != "ovs":
        return None
    return {**host_instance(lab, host).env, "KVNET_OVS_DATAPATH": DATAPATH}


def lab_spec(name: str, hosts: int, dataplane: str) -> LabSpec:
    """`kvnet lab up/demo --dataplane`: linux or ovs on every host, or mixed (h1, h3, ... linux; h2, h4, ... ovs)."""
    if dataplane in ("linux", "ovs"):
        return default_spec(name, hosts, dataplane)  # type: ignore[arg-type]
    if dataplane != "mixed":
        raise ValueError(f"dataplane {dataplane!r}: one of linux, ovs, mixed")
    base = default_spec(name, hosts)
    return LabSpec(name, tuple(replace(h, dataplane="ovs" if i % 2 else "linux") for i, h in enumerate(base.hosts)))
