"""VF settings and the drivers that apply them.

`VFSettings` is what kvnet wants on one VF (the VM's MAC, the provider VLAN, spoof checking, trust,
link state, a transmit rate limit). A `VFDriver` makes a VF match it, reads it back, and resets it.

- `NetlinkVFDriver` (production) uses `ip link set PF vf N ...` and reads `ip -j -d link show PF`
  (vfinfo_list). It sets only the fields that differ from what the NIC reports, one command per
  field, so a driver without e.g. `trust` support fails only when trust is actually requested.
- `kvnet.sriov.emulated.EmulatedVFDriver` emulates VFs for the lab, which has no SR-IOV NIC.

`reset` matters: the source document's outage came from a VLAN left on a VF (`ip link set p2p1 vf 6
vlan 0` fixed it by hand), so a released VF must go back to RESET, not keep its last tenant's state.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from kvnet.errors import InvalidInput
from kvnet.model.resources import Network, Port, QoSPolicy
from kvnet.sys import cmd

LinkState = Literal["auto", "enable", "disable"]
ZERO_MAC = "00:00:00:00:00:00"
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


@dataclass(frozen=True)
class VFSettings:
    mac: str = ZERO_MAC
    vlan: int = 0  # 0 = untagged
    spoofchk: bool = True
    trust: bool = False
    link_state: LinkState = "auto"
    max_tx_rate_mbps: int = 0  # 0 = unlimited

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", self.mac.lower())
        if not MAC_RE.match(self.mac):
            raise InvalidInput(f"'{self.mac}' is not a MAC address", "mac")
        if not 0 <= self.vlan <= 4094:
            raise InvalidInput(f"VLAN {self.vlan} is outside 0-4094", "vlan")
        if self.max_tx_rate_mbps < 0:
            raise InvalidInput("max_tx_rate_mbps cannot be negative", "max_tx_rate_mbps")
        if self.link_state not in ("auto", "enable", "disable"):
            raise InvalidInput(f"link_state must be auto, enable or disable, not {self.link_state}",
                               "link_state")


RESET = VFSettings()


class VFDriver(Protocol):
    def configure(self, pf: str, vf_index: int, settings: VFSettings) -> None: ...

    def reset(self, pf: str, vf_index: int) -> None: ...

    def read(self, pf: str, vf_index: int) -> VFSettings: ...


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def field_args(settings: VFSettings) -> dict[str, list[str]]:
    """The `ip link set PF vf N` arguments for each field of `settings`."""
    return {
        "mac": ["mac", settings.mac],
        "vlan": ["vlan", str(settings.vlan)],
        "spoofchk": ["spoofchk", _on(settings.spoofchk)],
        "trust": ["trust", _on(settings.trust)],
        "link_state": ["state", settings.link_state],
        "max_tx_rate_mbps": ["max_tx_rate", str(settings.max_tx_rate_mbps)],
    }


def configure_argvs(pf: str, vf_index: int, desired: VFSettings,
                    current: VFSettings | None = None) -> list[list[str]]:
    """One `ip link set` per field that differs from `current` (every field when it is unknown)."""
    base = ["ip", "link", "set", "dev", pf, "vf", str(vf_index)]
    changed = [f.name for f in dataclasses.fields(VFSettings)
               if current is None or getattr(desired, f.name) != getattr(current, f.name)]
    args = field_args(desired)
    return [[*base, *args[name]] for name in changed]


def parse_vfinfo(link_json: Sequence[dict[str, Any]], vf_index: int) -> VFSettings:
    """VF `vf_index`'s settings from `ip -j -d link show PF` output (old and new iproute2 keys)."""
    if not link_json:
        raise InvalidInput("no such link", "pf")
    link = link_json[0]
    for info in link.get("vfinfo_list", []):
        if info.get("vf") == vf_index:
            return _settings(info)
    raise InvalidInput(f"{link.get('ifname', 'the PF')} has no VF {vf_index} "
                       f"({len(link.get('vfinfo_list', []))} VFs)", "vf_index")


def _settings(info: dict[str, Any]) -> VFSettings:
    vlans = info.get("vlan_list")
    vlan = (vlans[0].get("vlan", 0) if vlans else 0) if vlans is not None else info.get("vlan", 0)
    rate = info.get("rate", {}).get("max_tx", info.get("tx_rate", 0))
    return VFSettings(mac=info.get("address", info.get("mac", ZERO_MAC)), vlan=vlan,
                      spoofchk=info.get("spoofchk", True), trust=info.get("trust", False),
                      link_state=info.get("link_state", "auto"), max_tx_rate_mbps=rate)


Runner = Callable[..., Any]


class NetlinkVFDriver:
    """Real VFs through iproute2 (the PF in `netns`, normally the host's root namespace: None)."""

    def __init__(self, netns: str | None = None, run: Runner = cmd.run, run_json: Runner = cmd.run_json):
        self.netns = netns
        self._run = run
        self._run_json = run_json

    def read(self, pf: str, vf_index: int) -> VFSettings:
        return parse_vfinfo(self._run_json(["ip", "-j", "-d", "link", "show", "dev", pf], netns=self.netns),
                            vf_index)

    def configure(self, pf: str, vf_index: int, settings: VFSettings) -> None:
        for argv in configure_argvs(pf, vf_index, settings, self.read(pf, vf_index)):
            self._run(argv, netns=self.netns)

    def reset(self, pf: str, vf_index: int) -> None:
        self.configure(pf, vf_index, RESET)


def settings_for_port(port: Port, network: Network, qos: QoSPolicy | None = None) -> VFSettings:
    """What a direct port's VF should carry, in Neutron's terms: the port's MAC, the provider VLAN,
    spoof checking from port_security_enabled, trust from binding_profile['trusted'], and the QoS
    policy as max_tx_rate (libvirt cannot shape a hostdev interface)."""
    if not port.mac_address:
        raise InvalidInput(f"{port.ref()} has no MAC address yet", "mac_address")
    vlan = network.segmentation_id if network.network_type == "vlan" and network.segmentation_id else 0
    rate = 0 if qos is None else max(1, math.ceil(qos.max_kbps / 1000))
    return VFSettings(mac=port.mac_address, vlan=vlan, spoofchk=port.port_security_enabled,
                      trust=bool(port.binding_profile.get("trusted", False)), link_state="auto",
                      max_tx_rate_mbps=rate)
