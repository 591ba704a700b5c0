"""`kvnet-vf`: a VM's direct (SR-IOV) port in the pps harness, next to kvnet's bridged path.

Built by kvnet like `kvnet-bridge`: a lab (one host, API server, agent), the host given the lab's
EMULATED SR-IOV NIC (`kvnet.lab.sriov`: PF `p2p1` = a veth into the external segment, VFs = macvlan
endpoints), a VLAN provider network on physnet2 and a `vnic_type=direct` port that the server binds to a
VF (`binding_profile`) and the agent configures through the `VFDriver` interface — the production code
path of a real VF. The VM is a lab namespace VM; `attach_vf` joins its host-side veth to the VF endpoint
with two tc mirred redirects, the lab's stand-in for VFIO passthrough:

    VM eth0 -> kvt-<port> =tc mirred=> p2p1v0 (macvlan "VF") -> p2p1 (veth "PF") -> br-ext -> receiver eth0

The receiver is a namespace of the bench (`<prefix>-r`, 203.0.113.250) on the lab's external segment
(`br-ext` stands in for the physical switch), counted by the harness's nft sink like any receiver.

Reference: `kvnet-bridge` (two VMs on one kvnet Linux bridge). Both are kvnet-built labs with the same
namespace VMs, generator and host processes, so `ratio_to_reference` compares the two ways kvnet attaches
a VM NIC (normal port on the host bridge vs direct port on a VF). The hand-built `bridge` is
`kvnet-bridge`'s own reference (kvnet's configuration overhead), a different question.

The emulated VF is software on the host CPU; a real VF switches in the NIC and bypasses the host kernel,
so this path measures the emulation's cost, not SR-IOV's (see docs/sriov.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kvnet.bench.dataplane.base import Endpoints, addr, mac_of, namespaces, register
from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import wait_port_active
from kvnet.lab.lab import Lab
from kvnet.lab.probe import ping_until
from kvnet.lab.spec import default_spec
from kvnet.lab.sriov import SRIOV_PHYSNET, attach_vf, enable_emulated_sriov, pf_peer, wait_reported
from kvnet.lab.vm import create_vm, nic_up
from kvnet.sys import netns
from kvnet.sys.cmd import run
from kvnet.sys.netns import add_veth

HOST = "h1"
VM_NAME = "vfs"
VLAN = 100
CIDR = "203.0.113.0/24"
GATEWAY = n.EXT_SERVER_CIDR.split("/")[0]
VM_IP = "203.0.113.11"
RECEIVER_IP = "203.0.113.250"
RECEIVER_PEER = "bench-r"  # the receiver's port on br-ext, in <lab>-ext
NUM_VFS = 2
DEADLINE_S = 10.0


def vf_lab_name() -> str:
    """`kvf` + 4 hex digits (lab names are at most 8 characters); not `kb…`, whose labs other paths own."""
    return f"kvf{secrets.token_hex(2)}"


@dataclass(frozen=True)
class VFSession:
    """A built `kvnet-vf` path, for inspection while it stands (tests)."""

    lab: Lab
    client: Client
    network: dict[str, Any]
    port: dict[str, Any]  # as the agent left it: ACTIVE, with binding_profile {pci_slot, pf, vf_index, ...}
    vm: dict[str, Any]    # the lab's VM record (host-side device in `device`)
    endpoints: Endpoints


def learned_port(ext_ns: str, mac: str) -> str | None:
    """The br-ext port on which the external segment learned `mac` (None: not learned)."""
    for line in run(["bridge", "fdb", "show", "br", n.EXT_BRIDGE], netns=ext_ns).stdout.splitlines():
        fields = line.split()
        if fields and fields[0].lower() == mac.lower() and "dev" in fields:
            return fields[fields.index("dev") + 1]
    return None


def add_receiver(receiver_ns: str, ext_ns: str) -> str:
    """The receiver's eth0 in `receiver_ns`, plugged into the lab's external segment; returns its MAC."""
    add_veth(n.VM_IF, receiver_ns, RECEIVER_PEER, ext_ns)
    run(["ip", "-n", ext_ns, "link", "set", RECEIVER_PEER, "master", n.EXT_BRIDGE])
    addr(receiver_ns, n.VM_IF, f"{RECEIVER_IP}/{CIDR.split('/')[1]}")
    return mac_of(receiver_ns, n.VM_IF)


def boot_direct_vm(lab: Lab, client: Client, network: dict[str, Any], subnet: dict[str, Any]
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """What Nova does for an SR-IOV NIC: a direct port bound to the host (the server picks the VF), the VM
    created with its NIC down, the port ACTIVE once the agent configured the VF, the VF handed to the VM
    (`attach_vf`), the NIC up. Returns (port, VM record)."""
    port = client.create("ports", {"name": VM_NAME, "network_id": network["id"], "vnic_type": "direct",
                                   "binding_host": HOST, "fixed_ips": [{"ip_address": VM_IP}]})
    vm = create_vm(lab, VM_NAME, HOST, port, subnet, network["mtu"], nic_up=False)
    port = wait_port_active(client, port["id"], DEADLINE_S)
    attach_vf(lab, HOST, vm["device"], port["binding_profile"])
    nic_up(lab, VM_NAME)
    return port, vm


@dataclass(frozen=True)
class KvnetVFPath:
    """A VM on a direct port (emulated VF) sending to a receiver on the provider network's segment."""

    name: str = "kvnet-vf"
    reference: str = "kvnet-bridge"
    description: str = ("VM on a direct (SR-IOV) port, server-bound VF configured by the agent -> external "
                        "segment; the VF is EMULATED (macvlan on a veth PF, tc mirred for passthrough)")
    observe: Callable[[VFSession], None] | None = None  # called with the built path before it is measured

    @contextmanager
    def build(self, prefix: str) -> Iterator[Endpoints]:
        with self.session(prefix) as s:
            if self.observe is not None:
                self.observe(s)
            yield s.endpoints

    @contextmanager
    def session(self, prefix: str) -> Iterator[VFSession]:
        lab_name = vf_lab_name()
        lab = Lab(lab_name)
        ext = n.ext_ns(lab_name)
        with namespaces(prefix) as ns:
            try:
                lab.up(default_spec(lab_name, 1), control_plane=True)
                with Client(control.server_url(lab)) as client:
                    enable_emulated_sriov(lab, [HOST], num_vfs=NUM_VFS, client=client)
                    wait_reported(client, HOST)
                    network = client.create("networks", {"name": "ext2", "network_type": "vlan",
                                                         "physnet": SRIOV_PHYSNET, "segmentation_id": VLAN})
                    subnet = client.create("subnets", {"network_id": network["id"], "cidr": CIDR,
                                                       "gateway_ip": GATEWAY})
                    receiver = ns.add("r")
                    receiver_mac = add_receiver(receiver, ext)
                    port, vm = boot_direct_vm(lab, client, network, subnet)
                    if ping_until(lab, VM_NAME, RECEIVER_IP, DEADLINE_S) is None:
                        raise RuntimeError(f"{self.name}: the VM does not reach {RECEIVER_IP} through its VF")
                    via = learned_port(ext, port["mac_address"])
                    if via != pf_peer(HOST):  # not through the emulated PF: the path is not the VF path
                        raise RuntimeError(f"{self.name}: {port['mac_address']} learned on {via}, not on "
                                           f"{pf_peer(HOST)} (the PF's port)")
                    endpoints = Endpoints(
                        sender_ns=n.vm_ns(lab_name, VM_NAME), sender_dev=n.VM_IF, src_mac=port["mac_address"],
                        src_ip=VM_IP, dst_mac=receiver_mac, dst_ip=RECEIVER_IP, receiver_ns=receiver,
                        receiver_dev=n.VM_IF, host_ns=n.host_ns(lab_name, HOST))
                    yield VFSession(lab, client, network, port, vm, endpoints)
            finally:
                try:
                    lab.down()
                finally:
                    netns.delete_with_prefix(n.prefix(lab_name))


KVNET_VF = register(KvnetVFPath())
