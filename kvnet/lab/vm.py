"""Lab VMs: a namespace `<lab>-vm-<name>` whose eth0 is one end of a veth; the other end is the port's
device (`port_device_name(port_id)`) in the host namespace, where the hypervisor would put the tap.
The agent plugs that device into the network; the lab only creates it, as the hypervisor does.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from typing import Any

from kvnet.lab import names as n
from kvnet.lab.lab import Lab, LabError
from kvnet.plan import port_device_name
from kvnet.sys import netns
from kvnet.sys.cmd import run


def port_addresses(port: dict[str, Any], subnet: dict[str, Any]) -> list[str]:
    """The port's fixed IPs on `subnet`, as address/prefix strings."""
    net = ipaddress.ip_network(subnet["cidr"])
    out = []
    for fixed in port.get("fixed_ips", []):
        if subnet.get("id") and fixed.get("subnet_id") not in (None, subnet["id"]):
            continue
        ip = ipaddress.ip_address(fixed["ip_address"])
        if ip in net:
            out.append(f"{ip}/{net.prefixlen}")
    return out


ARP_RETRY_MS = 20


def create_vm(lab: Lab, name: str, host: str, port: dict[str, Any], subnet: dict[str, Any],
              network_mtu: int, *, nic_up: bool = True) -> dict[str, Any]:
    """Create VM `name` on `host` with the port's MAC and IPs; returns its state.json record.

    With `nic_up=False` the VM's eth0 stays down until `nic_up(lab, name)`: what Nova does when it
    keeps a VM paused until Neutron reports its port wired (the vif-plugged event)."""
    n.check_vm_name(name)
    hns = lab.host_ns(host)
    vns = n.vm_ns(lab.name, name)
    if name in lab.vms() or netns.exists(vns):
        raise LabError(f"lab {lab.name} already has a VM {name!r}")
    addrs = port_addresses(port, subnet)
    if not addrs:
        raise LabError(f"port {port['id']} has no fixed IP in subnet {subnet['cidr']}")
    device = port_device_name(port["id"])
    record = {"name": name, "host": host, "namespace": vns, "port_id": port["id"], "device": device,
              "mac": port["mac_address"], "ips": addrs, "mtu": network_mtu,
              "gateway": subnet.get("gateway_ip")}
    with lab.state.update() as st:  # recorded first, so `down` finds a half-built VM
        st["vms"][name] = record
    try:
        netns.add(vns)
        mtu = str(network_mtu)
        run(["ip", "-n", hns, "link", "add", device, "mtu", mtu, "type", "veth", "peer", "name", n.VM_IF,
             "address", port["mac_address"], "mtu", mtu, "netns", vns])
        run(["ip", "-n", hns, "link", "set", device, "up"])
        if lab.hosts()[host].get("dataplane") == "ovs":  # OVS userspace reads the veth without offloads:
            run(["ethtool", "-K", n.VM_IF, "tx", "off"], netns=vns)  # the VM computes its own checksums
        lines = [f"addr add {a} dev {n.VM_IF}" for a in addrs] + ([f"link set {n.VM_IF} up"] if nic_up else [])
        if subnet.get("gateway_ip") and nic_up:
            lines.append(f"route add default via {subnet['gateway_ip']} dev {n.VM_IF}")
        run(["ip", "-n", vns, "-batch", "-"], input="\n".join(lines) + "\n")
        # A guest retries ARP after 1 s; the lab's every 20 ms (as often as `ping_until` pings), so that
        # convergence figures measure when the cloud knows a port, not when the guest asks again.
        run(["sysctl", "-qw", f"net.ipv4.neigh.{n.VM_IF}.retrans_time_ms={ARP_RETRY_MS}"], netns=vns)
    except BaseException:
        delete_vm(lab, name)
        raise
    return record


def nic_up(lab: Lab, name: str) -> None:
    """Bring a VM's NIC up (and its default route, which needs the link up)."""
    record = lab.vms()[name]
    lines = [f"link set {n.VM_IF} up"]
    if record.get("gateway"):
        lines.append(f"route replace default via {record['gateway']} dev {n.VM_IF}")
    run(["ip", "-n", record["namespace"], "-batch", "-"], input="\n".join(lines) + "\n")


def delete_vm(lab: Lab, name: str) -> None:
    """Remove the VM: its host-side device first (synchronously, taking eth0 with it), then its namespace.

    Deleting only the namespace would also remove the veth, but asynchronously; a port re-created
    at once would then find its device name still taken.
    """
    record = lab.vms().get(name)
    if record and record.get("kind") == "qemu":  # a real guest: stop qemu, its taps go with it
        from kvnet.lab.qemu_vm import delete_qemu_vm

        delete_qemu_vm(lab, name)
        return
    if record and netns.exists(n.host_ns(lab.name, record["host"])):
        run(["ip", "-n", n.host_ns(lab.name, record["host"]), "link", "del", record["device"]], check=False)
    netns.delete(n.vm_ns(lab.name, name))
    with lab.state.update() as st:
        st["vms"].pop(name, None)


def vm_exec(lab: Lab, name: str, argv: Sequence[str], *, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    if name not in lab.vms():
        raise LabError(f"lab {lab.name} has no VM {name!r}")
    return run(argv, netns=n.vm_ns(lab.name, name), check=check, timeout=timeout)
