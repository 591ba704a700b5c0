"""Open vSwitch paths in the pps harness: a hand-built OVS VXLAN reference and the same path built by kvnet.

ovs-vxlan-ref    sender -- [h1: OVS br-int (vs, vx)] =underlay= [h2: OVS br-int (vx, vr)] -- receiver
                 Two host namespaces, each with its own ovsdb-server + ovs-vswitchd (userspace datapath,
                 started by `kvnet.lab.ovs` in a run directory of its own), the tunnel endpoint on br-phy
                 holding the underlay veth (as in the lab), a static VXLAN port (remote_ip, key 42) and two
                 hand-written flows: VM port <-> VXLAN port. The least OVS can do for this path.
kvnet-ovs-vxlan  a kvnet lab whose two hosts run OVS (`dataplane="ovs"`), two VMs on one VXLAN network
                 booted through the API: kv-int, the flow-based `kv-vxlan` port and kvnet's tables; the VMs
                 have port security and their project's default group (the benchmark flow is accepted by
                 its remote-group rule: a conjunction; kvnet.dataplane.ovs.filters)
kvnet-ovs-vxlan-open  the same with port security off: no filter, the forwarding tables only

The userspace datapath (no openvswitch kernel module here) is far slower than the kernel: about 0.5x
of the hand-built kernel VXLAN path (`ovs-vxlan-ref`'s reference) and it drops under flat-out load
(see /work/shared/facts/ovs-userspace.md). What kvnet answers for is `kvnet-ovs-vxlan`'s ratio to
`ovs-vxlan-ref`: the cost of kvnet's OVS configuration over the same datapath.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from kvnet.bench.dataplane.base import Endpoints, Namespaces, addr, mac_of, namespaces, register
from kvnet.bench.dataplane.kvnet_paths import DEADLINE_S, KvnetL2Path
from kvnet.lab import ovs
from kvnet.lab.probe import ping_until_ns
from kvnet.lab.procs import Supervisor
from kvnet.lab.state import StateFile
from kvnet.sys.cmd import run
from kvnet.sys.netns import add_veth

UNDERLAY, OVERLAY = "192.168.97", "10.97.0"
UNDERLAY_MTU = 1600  # room for VXLAN under 1500-byte inner frames
VNI = 42
REF_BRIDGE = "br-int"


def _vm(ns: Namespaces, role: str, host: str, port: str, ip: str) -> str:
    """A VM namespace whose eth0's peer `port` is in `host`; checksums computed by the VM itself (OVS
    userspace reads raw frames and drops partial checksums)."""
    vm = ns.add(role)
    add_veth("eth0", vm, port, host)
    run(["ethtool", "-K", "eth0", "tx", "off"], netns=vm)
    addr(vm, "eth0", f"{ip}/24")
    return vm


def _ovs_host(procs: Supervisor, rundir: Path, host: str, index: int, port: str) -> ovs.OvsInstance:
    """OVS in `host`: tunnel endpoint .index on br-phy, br-int with `port` and a VXLAN port to the peer."""
    inst = ovs.start(procs, host, host, rundir / host)
    ovs.add_tunnel_endpoint(inst, "u", f"{UNDERLAY}.{index}/24", UNDERLAY_MTU)
    peer = f"{UNDERLAY}.{3 - index}"
    inst.vsctl("add-br", REF_BRIDGE, "--", "set", "bridge", REF_BRIDGE, f"datapath_type={ovs.DATAPATH}",
               "fail_mode=secure", "--", "add-port", REF_BRIDGE, port, "--", "add-port", REF_BRIDGE, "vx",
               "--", "set", "interface", "vx", "type=vxlan", f"options:remote_ip={peer}",
               f"options:local_ip={UNDERLAY}.{index}", f"options:key={VNI}")
    flows = f"in_port={port},actions=output:vx\nin_port=vx,actions=output:{port}\n"
    run(["ovs-ofctl", "add-flows", f"unix:{inst.rundir / REF_BRIDGE}.mgmt", "-"], input=flows)
    return inst


@dataclass(frozen=True)
class OvsVxlanRef:
    name: str = "ovs-vxlan-ref"
    reference: str | None = "vxlan"
    description: str = "two hosts, OVS userspace VXLAN by hand (static port, two flows each)"

    @contextmanager
    def build(self, prefix: str) -> Iterator[Endpoints]:
        with ExitStack() as stack:
            ns = stack.enter_context(namespaces(prefix))  # deleted last, after the daemons stopped
            rundir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kvovs", dir="/tmp")))
            procs = Supervisor(StateFile(rundir))
            stack.callback(procs.stop_all)
            h1, h2 = ns.add("h1"), ns.add("h2")
            add_veth("u", h1, "u", h2, mtu=UNDERLAY_MTU)
            run(["ip", "-n", h2, "link", "set", "u", "mtu", str(UNDERLAY_MTU)])  # add_veth sets end a only
            s = _vm(ns, "s", h1, "vs", f"{OVERLAY}.1")
            r = _vm(ns, "r", h2, "vr", f"{OVERLAY}.2")
            for index, (host, port) in enumerate(((h1, "vs"), (h2, "vr")), start=1):
                _ovs_host(procs, rundir, host, index, port)
            if ping_until_ns(s, f"{OVERLAY}.2", DEADLINE_S) is None:
                raise RuntimeError(f"{self.name}: the hand-built OVS VXLAN path does not connect")
            yield Endpoints(sender_ns=s, sender_dev="eth0", src_mac=mac_of(s, "eth0"), src_ip=f"{OVERLAY}.1",
                            dst_mac=mac_of(r, "eth0"), dst_ip=f"{OVERLAY}.2", receiver_ns=r,
                            receiver_dev="eth0", host_ns=h2)


OVS_VXLAN_REF = register(OvsVxlanRef())
KVNET_OVS_VXLAN = register(KvnetL2Path(
    "kvnet-ovs-vxlan", OVS_VXLAN_REF.name, "two VMs on two OVS hosts, kvnet's kv-int and flow-based VXLAN", "h2",
    dataplane="ovs"))
KVNET_OVS_VXLAN_OPEN = register(KvnetL2Path(
    "kvnet-ovs-vxlan-open", OVS_VXLAN_REF.name, "kvnet-ovs-vxlan with port security off (no filter)", "h2",
    dataplane="ovs", port_fields=(("port_security_enabled", False), ("security_group_ids", []))))
OVS_PATHS = (OVS_VXLAN_REF.name, KVNET_OVS_VXLAN_OPEN.name, KVNET_OVS_VXLAN.name)
