"""An emulated SR-IOV PF for the lab, which has no SR-IOV NIC (no netdevsim either).

What is real and what is not:
- VF N of PF `p2p1` is a macvlan endpoint `p2p1vN` (mode bridge) on the PF device inside a network
  namespace; the PF is whatever link the lab attached to the external segment (a veth end). Frames
  from the endpoint really leave through the PF with the VF's MAC, as from a real VF.
- Applied to the kernel: the MAC (the endpoint's address), link state (disable = endpoint down,
  auto/enable = up) and max_tx_rate (a tbf qdisc on the endpoint's egress, i.e. the VM's transmit
  direction, as a NIC's VF rate limiter). `read` reports these three from the kernel.
- Kept only in the JSON state file, not enforced: the VLAN (this kernel has no 8021q devices), spoof
  checking and trust. A real NIC tags/filters in hardware; here `read` returns what was set.
- A VF with reset settings has no endpoint: reset deletes it, so no MAC, qdisc or state is left.
The driver has the same interface as `NetlinkVFDriver`; the code above it does not know the difference.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from kvnet.sriov.vf import RESET, VFSettings
from kvnet.sys.cmd import run, run_json

TBF_BURST = "64kb"
TBF_LATENCY = "50ms"


def endpoint_name(pf: str, vf_index: int) -> str:
    name = f"{pf}v{vf_index}"
    if len(name) > 15:
        raise ValueError(f"emulated VF name {name} is longer than Linux's 15 bytes; use a shorter PF name")
    return name


class EmulatedVFDriver:
    """VFs of PFs in namespace `netns`, settings persisted in `state_path` (JSON)."""

    def __init__(self, netns: str, state_path: str | Path, num_vfs: int = 7) -> None:
        self.netns = netns
        self.state_path = Path(state_path)
        self.num_vfs = num_vfs

    # -- VFDriver ---------------------------------------------------------------------------------
    def configure(self, pf: str, vf_index: int, settings: VFSettings) -> None:
        self._check_index(vf_index)
        dev = endpoint_name(pf, vf_index)
        if not self._exists(dev):
            self._ip("link", "add", "link", pf, "name", dev, "type", "macvlan", "mode", "bridge")
        if settings.mac != RESET.mac:
            self._ip("link", "set", "dev", dev, "address", settings.mac)
        self._ip("link", "set", "dev", dev, "down" if settings.link_state == "disable" else "up")
        if settings.max_tx_rate_mbps:
            self._tc("qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{settings.max_tx_rate_mbps}mbit",
                     "burst", TBF_BURST, "latency", TBF_LATENCY)
        elif self._tbf_rate(dev) is not None:
            self._tc("qdisc", "del", "dev", dev, "root")
        self._save(pf, vf_index, settings)

    def reset(self, pf: str, vf_index: int) -> None:
        self._check_index(vf_index)
        dev = endpoint_name(pf, vf_index)
        if self._exists(dev):
            self._ip("link", "del", "dev", dev)
        self._save(pf, vf_index, None)

    def read(self, pf: str, vf_index: int) -> VFSettings:
        self._check_index(vf_index)
        stored = self._load().get(pf, {}).get(str(vf_index))
        dev = endpoint_name(pf, vf_index)
        links = run_json(["ip", "-j", "link", "show", "dev", dev], netns=self.netns) if self._exists(dev) else []
        if not links:
            return RESET
        link = links[0]
        base = VFSettings(**stored) if stored else RESET
        if "UP" not in link.get("flags", []):
            link_state = "disable"
        else:  # up: auto or enable as stored (a real VF reports which); up by hand despite disable: auto
            link_state = "auto" if base.link_state == "disable" else base.link_state
        # A macvlan always has a MAC; a VF configured with the zero MAC (none) reports zero, like a NIC.
        mac = RESET.mac if base.mac == RESET.mac else link["address"]
        rate_bps = self._tbf_rate(dev)
        return dataclasses.replace(base, mac=mac, link_state=link_state,
                                   max_tx_rate_mbps=round(rate_bps * 8 / 1_000_000) if rate_bps else 0)

    # -- helpers ----------------------------------------------------------------------------------
    def _check_index(self, vf_index: int) -> None:
        if not 0 <= vf_index < self.num_vfs:
            raise ValueError(f"emulated PF has VFs 0-{self.num_vfs - 1}, not {vf_index}")

    def _ip(self, *args: str) -> None:
        run(["ip", *args], netns=self.netns)

    def _tc(self, *args: str) -> None:
        run(["tc", *args], netns=self.netns)

    def _exists(self, dev: str) -> bool:
        return run(["ip", "link", "show", "dev", dev], netns=self.netns, check=False).returncode == 0

    def _tbf_rate(self, dev: str) -> int | None:
        """The root tbf's rate in bytes/s, or None when the endpoint has no tbf."""
        for qdisc in run_json(["tc", "-j", "qdisc", "show", "dev", dev, "root"], netns=self.netns):
            if qdisc.get("kind") == "tbf":
                return int(qdisc["options"]["rate"])
        return None

    def _load(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    def _save(self, pf: str, vf_index: int, settings: VFSettings | None) -> None:
        state = self._load()
        vfs = state.setdefault(pf, {})
        if settings is None:
            vfs.pop(str(vf_index), None)
        else:
            vfs[str(vf_index)] = dataclasses.asdict(settings)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_path)
