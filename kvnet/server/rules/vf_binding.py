"""Port binding for direct (SR-IOV) ports: the server picks the VF, inside the port's transaction.

A direct port bound to a host gets `binding_profile` {pci_slot, pf, vf_index, physical_network}: the
lowest free VF, among those the host's agent reported (`Host.agent["sriov"]`), on the PF that carries
the network's physnet on that host. "Free" = not in the profile of another direct port bound to that
host; the port list is read tracked, so two bindings racing for the last VF conflict and one retries.
No free VF is a 409 `Exhausted` at binding, naming host, physnet and PF — not a VM that boots without
its NIC. Releasing is implicit: a deleted or unbound port no longer holds its VF, and the host's agent
resets it.
"""

from __future__ import annotations

from kvnet.errors import Exhausted, InvalidInput
from kvnet.model.resources import Host, Network, Port
from kvnet.server.rules.common import load, load_all
from kvnet.sriov.report import REPORT_KEY, vfs_from_report
from kvnet.sriov.scheduler import pick_vf
from kvnet.store.txn import Txn

VF_KEYS = ("pci_slot", "pf", "vf_index", "physical_network")
PROVIDER_TYPES = ("flat", "vlan")


def bind_vf(txn: Txn, port: Port, old: Port | None = None) -> None:
    """Set (or keep, or drop) the VF of `port` in its binding_profile."""
    was_direct = old is not None and old.vnic_type == "direct"
    if port.vnic_type != "direct":
        if was_direct:
            port.binding_profile = _without_vf(port.binding_profile)
        return
    network = load(txn, Network, port.network_id, field="network_id")
    if network.network_type not in PROVIDER_TYPES:
        raise InvalidInput(f"a direct (SR-IOV) port needs a flat or vlan provider network; network "
                           f"{network.ref()} is {network.network_type}", field="vnic_type")
    profile = _without_vf(port.binding_profile)
    if port.binding_host:
        keep = (was_direct and old is not None and old.binding_host == port.binding_host
                and all(k in old.binding_profile for k in VF_KEYS))
        if keep:
            assert old is not None
            profile.update({k: old.binding_profile[k] for k in VF_KEYS})
        else:
            profile.update(_schedule(txn, port, network))
    port.binding_profile = profile


def _schedule(txn: Txn, port: Port, network: Network) -> dict[str, object]:
    host = load(txn, Host, port.binding_host or "", field="binding_host")
    report = host.agent.get(REPORT_KEY)
    if not report:
        raise Exhausted(f"host {host.name} has not reported any SR-IOV VFs (is its agent running, and does "
                        f"its physnets map {network.physnet} to an SR-IOV PF?)", field="binding_host")
    used = {p.binding_profile.get("pci_slot") for p in load_all(txn, Port)
            if p.id != port.id and p.binding_host == host.name and p.vnic_type == "direct"}
    choice = pick_vf(vfs_from_report(report), {u for u in used if u}, network.physnet or "", host.physnets,
                     host.name)
    return {"pci_slot": choice.pci_address, "pf": choice.pf, "vf_index": choice.vf_index,
            "physical_network": network.physnet}


def _without_vf(profile: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in profile.items() if k not in VF_KEYS}
