"""Paths built by kvnet itself: a lab with the API server and agents, VMs booted through the API.

Each is measured exactly like its hand-built reference (`paths.py`) in the same run, so
`ratio_to_reference` says whether kvnet's configuration of the same kernel construct costs
anything (goal >= 0.95), while `ratio_to_veth` is the price of the construct itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kvnet.bench.dataplane.base import Endpoints, register
from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, boot_vm
from kvnet.lab.lab import Lab
from kvnet.lab.probe import ping_until
from kvnet.lab.spec import default_spec

CIDR = "10.92.0.0/24"


@dataclass(frozen=True)
class KvnetL2Path:
    """Sender and receiver VMs on one kvnet network, on the same host or on two hosts."""

    name: str
    reference: str
    description: str
    receiver_host: str

    @contextmanager
    def build(self, prefix: str) -> Iterator[Endpoints]:
        lab_name = f"kb{secrets.token_hex(3)}"  # lab names are at most 8 characters
        lab = Lab(lab_name)
        lab.up(default_spec(lab_name, 2), control_plane=True)
        try:
            with Client(control.server_url(lab)) as client:
                network = client.create("networks", {"name": "bench"})
                client.create("subnets", {"network_id": network["id"], "cidr": CIDR})
                sender = DemoVM("snd", "h1", "bench", "10.92.0.11")
                receiver = DemoVM("rcv", self.receiver_host, "bench", "10.92.0.12")
                records = {vm.name: boot_vm(lab, client, vm) for vm in (sender, receiver)}
            if ping_until(lab, sender.name, receiver.ip, 10) is None:
                raise RuntimeError(f"{self.name}: kvnet did not connect the benchmark VMs")
            yield Endpoints(
                sender_ns=n.vm_ns(lab_name, sender.name), sender_dev=n.VM_IF, src_mac=records["snd"]["mac"],
                src_ip=sender.ip, dst_mac=records["rcv"]["mac"], dst_ip=receiver.ip,
                receiver_ns=n.vm_ns(lab_name, receiver.name), receiver_dev=n.VM_IF,
                host_ns=n.host_ns(lab_name, self.receiver_host))
        finally:
            lab.down()


KVNET_BRIDGE = register(KvnetL2Path("kvnet-bridge", "bridge", "two VMs on one host, bridged by kvnet", "h1"))
KVNET_VXLAN = register(KvnetL2Path("kvnet-vxlan", "vxlan", "two VMs on two hosts, kvnet VXLAN overlay", "h2"))
