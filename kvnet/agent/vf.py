"""The agent's side of SR-IOV: make this host's VFs match the direct ports bound to it.

The server chose each direct port's VF at binding (`binding_profile` {pci_slot, pf, vf_index}, from the
VFs this agent reported). Here:
- `compile_vfs(host, model)` (pure) -> one `VFAssignment` per such port: the VF and the `VFSettings`
  it must carry (port MAC, provider VLAN — 0 on a flat network —, spoof checking from port security,
  trust off unless the profile says `trusted`, link auto, max_tx_rate from the port's QoS policy);
- `VFReconciler.reconcile` (level-triggered, like the bridge driver): every VF of the PFs this host maps
  to a physnet either carries its assignment or is reset (MAC zero, VLAN 0, rate 0, spoofchk on, trust
  off), so a released VF never takes its last tenant's MAC, VLAN or rate to the next VM — the source
  document's manual `ip link set p2p1 vf 6 vlan 0` becomes impossible to need. Only VFs whose read-back
  differs are written, so a steady state costs reads only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kvnet.agent.model import CloudModel
from kvnet.errors import KvnetError
from kvnet.model.resources import QoSPolicy
from kvnet.sriov.report import host_report
from kvnet.sriov.source import SriovSource
from kvnet.sriov.vf import RESET, VFSettings, settings_for_port
from kvnet.sys.cmd import CommandError

log = logging.getLogger("kvnet.agent.vf")
PROFILE_KEYS = ("pci_slot", "pf", "vf_index")


@dataclass(frozen=True, order=True)
class VFAssignment:
    pf: str
    vf_index: int
    port_id: str
    pci_slot: str
    settings: VFSettings = field(compare=False)


@dataclass
class VFResult:
    configured: list[str] = field(default_factory=list)  # "pf/vf" written this pass
    reset: list[str] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)  # port id -> ACTIVE | DOWN
    errors: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)  # for the heartbeat


def compile_vfs(host: str, model: CloudModel) -> tuple[VFAssignment, ...]:
    out = []
    qos = model.by_kind.get(QoSPolicy.kind, {})
    for port in model.ports.values():
        profile = port.binding_profile
        if port.binding_host != host or port.vnic_type != "direct" or not all(k in profile for k in PROFILE_KEYS):
            continue
        network = model.networks.get(port.network_id)
        if network is None or not port.mac_address:
            continue
        policy = qos.get(port.qos_policy_id or "")
        settings = settings_for_port(port, network, policy if isinstance(policy, QoSPolicy) else None)
        out.append(VFAssignment(profile["pf"], int(profile["vf_index"]), port.id, profile["pci_slot"], settings))
    return tuple(sorted(out))


class VFReconciler:
    def __init__(self, source: SriovSource) -> None:
        self.source = source

    def reconcile(self, assignments: tuple[VFAssignment, ...], managed_pfs: set[str]) -> VFResult:
        """Bring every VF of `managed_pfs` (the host's physnet interfaces) to its assignment or to RESET."""
        result = VFResult(report={"pfs": [], "emulated": self.source.emulated})
        if not managed_pfs:
            return result  # no physnet interface on this host: nothing to scan
        inventory = self.source.inventory()
        result.report = host_report(inventory, managed_pfs, emulated=self.source.emulated)
        wanted = {(a.pf, a.vf_index): a for a in assignments}
        for pf in inventory.pfs:
            if pf.name not in managed_pfs:
                continue
            for vf in pf.vfs:
                assignment = wanted.pop((pf.name, vf.index), None)
                self._one(pf.name, vf.index, assignment, result)
        for a in wanted.values():
            result.errors.append(f"port {a.port_id}: this host has no VF {a.vf_index} on {a.pf}")
            result.status[a.port_id] = "DOWN"
        return result

    def _one(self, pf: str, index: int, assignment: VFAssignment | None, result: VFResult) -> None:
        want = assignment.settings if assignment else RESET
        name = f"{pf}/{index}"
        driver = self.source.driver(pf)
        try:
            if driver.read(pf, index) != want:
                if assignment:
                    driver.configure(pf, index, want)
                    result.configured.append(name)
                else:
                    driver.reset(pf, index)
                    result.reset.append(name)
                log.info("VF %s %s", name, f"configured for port {assignment.port_id}" if assignment else "reset")
            if assignment:
                result.status[assignment.port_id] = "ACTIVE"
        except (CommandError, KvnetError, ValueError, KeyError) as exc:
            result.errors.append(f"VF {name}: {exc}")
            if assignment:
                result.status[assignment.port_id] = "DOWN"
