"""An emulated SR-IOV NIC per lab host (this machine has no SR-IOV NIC and no netdevsim).

What stands in for what:
- The PF: `p2p1` (the source document's name) in the host namespace, a veth whose other end `<host>-sr`
  is a port of the external segment (br-ext in `<lab>-ext`, where 203.0.113.1 answers). It is mapped
  to the provider physnet `physnet2`, like `physical_device_mappings = physnet2:p2p1`.
- The VFs: `kvnet.sriov.emulated.EmulatedVFDriver` — VF N is a macvlan endpoint `p2p1vN` on the PF,
  created by the agent when it configures the VF and deleted when it resets it. Frames leave through the
  PF with the VF's MAC; max_tx_rate is a tbf qdisc on the endpoint. The VLAN is recorded, not tagged
  (this kernel has no 802.1Q devices): every VLAN of physnet2 reaches the same external segment, so
  VLAN isolation itself is not emulated.
- The inventory the agent reports: written here as `<labdir>/sriov/<host>.json` (PF name, VF count,
  the namespace, the VF state file) and read by `kvnet.sriov.source.EmulatedSriov` in the agent,
  whose `--sriov-emulation` option points at that file.
- The VF inside the VM (VFIO passthrough on a real host): `attach_vf` joins the guest NIC's tap and the
  VF endpoint with two tc mirred redirects, so everything the guest sends leaves through the VF (and
  its rate limit) and everything the VF receives reaches the guest — no bridge, no host IP in between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kvnet.lab import names as n
from kvnet.lab.lab import Lab, LabError
from kvnet.lab.procs import POLL_S
from kvnet.sriov.emulated import endpoint_name
from kvnet.sys.cmd import run

PF_NAME = "p2p1"
SRIOV_PHYSNET = "physnet2"
DEFAULT_NUM_VFS = 4


def pf_peer(host: str) -> str:
    return f"{host}-sr"


def config_path(labdir: Path, host: str) -> Path:
    """Where the agent of `host` finds its emulated PFs (absent: the host has no SR-IOV NIC)."""
    return labdir / "sriov" / f"{host}.json"


def enable_emulated_sriov(lab: Lab, hosts: Iterable[str] | None = None, *, num_vfs: int = DEFAULT_NUM_VFS,
                          physnet: str = SRIOV_PHYSNET, client: Any = None) -> None:
    """Give each host an emulated PF with `num_vfs` VFs on `physnet` (the external segment).

    With `client` (a kvnet Client) the hosts' physnets are updated through the API as an operator would;
    their agents then report the VFs with their next heartbeat."""
    for host in hosts or list(lab.hosts()):
        hns = lab.host_ns(host)
        run(["ip", "-n", hns, "link", "add", PF_NAME, "type", "veth", "peer", "name", pf_peer(host),
             "netns", n.ext_ns(lab.name)])
        run(["ip", "-n", hns, "link", "set", PF_NAME, "up"])
        run(["ip", "-n", n.ext_ns(lab.name), "link", "set", pf_peer(host), "master", n.EXT_BRIDGE, "up"])
        path = config_path(lab.dir, host)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {"netns": hns, "pfs": [{"name": PF_NAME, "num_vfs": num_vfs,
                                         "state": str(path.with_name(f"{host}-vfs.json"))}]}
        path.write_text(json.dumps(config, indent=1))
        with lab.state.update() as st:
            st["hosts"][host]["physnets"] = {**st["hosts"][host]["physnets"], physnet: PF_NAME}
        if client is not None:
            current = client.get("hosts", host)
            client.update("hosts", host, {"physnets": {**current["physnets"], physnet: PF_NAME}})


def attach_vf(lab: Lab, host: str, tap: str, binding_profile: dict[str, Any]) -> None:
    """Wire a guest NIC's tap to its port's VF endpoint (both directions), the lab's PCI passthrough."""
    try:
        vf = endpoint_name(binding_profile["pf"], int(binding_profile["vf_index"]))
    except KeyError as exc:
        raise LabError(f"port has no VF in its binding profile ({binding_profile}): missing {exc}") from None
    hns = lab.host_ns(host)
    run(["ip", "-n", hns, "link", "set", tap, "up"])
    for src, dst in ((tap, vf), (vf, tap)):
        run(["tc", "qdisc", "replace", "dev", src, "ingress"], netns=hns)
        run(["tc", "filter", "replace", "dev", src, "parent", "ffff:", "pref", "1", "protocol", "all",
             "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", dst], netns=hns)


def wait_reported(client: Any, host: str, deadline_s: float = 15.0) -> dict[str, Any]:
    """Poll until `host`'s agent has reported at least one PF with VFs; returns that report."""
    from kvnet.sriov.report import REPORT_KEY

    end = time.monotonic() + deadline_s
    while True:
        report = client.get("hosts", host)["agent"].get(REPORT_KEY) or {}
        if any(pf.get("vfs") for pf in report.get("pfs", [])):
            return report
        if time.monotonic() > end:
            raise TimeoutError(f"host {host} reported no SR-IOV VFs within {deadline_s}s (report: {report})")
        time.sleep(POLL_S)
