"""`kvnet lab demo --dataplane ovs|mixed`: the default demo on OVS (or mixed) hosts, plus per network type.

The default scenario (two VXLAN networks, same CIDR, a VM of each on every host; reachability,
isolation, ARP on the underlay, convergence) runs unchanged. When every host runs OVS, two GRE
networks and two VLAN provider networks (physnet-ext, VLAN 101 and 102) follow, built the same way,
and `network_types` counts reachability and leaks per type. A Linux host cannot carry GRE here (no
gretap) nor tag VLANs (no 8021q), so a mixed lab reports VXLAN only.
"""

from __future__ import annotations

from typing import Any

from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, Progress, _scenario, boot_vm, ping_matrix
from kvnet.lab.lab import Lab
from kvnet.lab.ovs import lab_spec

EXTRA_CIDR = "10.20.0.0/24"
# (network type, [(name, base address, extra network attributes)])
EXTRA_TYPES: tuple[tuple[str, tuple[tuple[str, int, dict[str, Any]], ...]], ...] = (
    ("gre", (("green", 10, {}), ("yellow", 20, {}))),
    ("vlan", (("vlan101", 10, {"physnet": n.EXT_PHYSNET, "segmentation_id": 101}),
              ("vlan102", 20, {"physnet": n.EXT_PHYSNET, "segmentation_id": 102}))),
)


def run_dataplane_demo(name: str, hosts: int, dataplane: str, progress: Progress = lambda _: None) -> dict[str, Any]:
    lab = Lab(name)
    spec = lab_spec(name, hosts, dataplane)
    progress(f"lab {name}: {hosts} hosts ({', '.join(f'{h.name}={h.dataplane}' for h in spec.hosts)})")
    lab.up(spec, control_plane=True)
    try:
        with Client(control.server_url(lab)) as client:
            data = _scenario(lab, client, progress).to_json()
            data["dataplanes"] = {h.name: h.dataplane for h in spec.hosts}
            data["network_types"] = {"vxlan": {
                "networks": 2, "vms": len(data["vms"]), "reachable_pairs": data["reachable_pairs"],
                "expected_reachable_pairs": data["expected_reachable_pairs"],
                "isolation_leaks": data["isolation_leaks"]}}
            if all(h.dataplane == "ovs" for h in spec.hosts):
                for kind, networks in EXTRA_TYPES:
                    data["network_types"][kind] = _type_scenario(lab, client, kind, networks, progress)
    finally:
        progress(f"lab {name}: down")
        lab.down()
    return data


def _type_scenario(lab: Lab, client: Client, kind: str, networks: tuple[tuple[str, int, dict[str, Any]], ...],
                   progress: Progress) -> dict[str, Any]:
    vms: list[DemoVM] = []
    for net_name, base, extra in networks:
        network = client.create("networks", {"name": f"{net_name}-net", "project_id": net_name,
                                             "network_type": kind, **extra})
        client.create("subnets", {"name": f"{net_name}-sub", "network_id": network["id"], "cidr": EXTRA_CIDR,
                                  "project_id": net_name})
        for i, host in enumerate(sorted(lab.hosts()), start=1):
            vm = DemoVM(f"{net_name}{i}", host, f"{net_name}-net", f"10.20.0.{base + i}")
            progress(f"VM {vm.name} on {host} ({kind} network {vm.network}, {vm.ip})")
            boot_vm(lab, client, vm)
            vms.append(vm)
    outcome = ping_matrix(lab, vms)
    expected = [p for p in outcome if p[0].network == p[1].network]
    return {"networks": len(networks), "vms": len(vms),
            "reachable_pairs": sum(1 for p in expected if outcome[p]),
            "expected_reachable_pairs": len(expected),
            "isolation_leaks": sum(1 for p, ok in outcome.items() if ok and p[0].network != p[1].network)}


def network_types_ok(data: dict[str, Any]) -> bool:
    return all(t["reachable_pairs"] == t["expected_reachable_pairs"] and not t["isolation_leaks"]
               for t in data.get("network_types", {}).values())


def render_network_types(data: dict[str, Any]) -> str:
    lines = [f"\n{kind:6} {t['networks']} networks, {t['vms']} VMs: {t['reachable_pairs']} / "
             f"{t['expected_reachable_pairs']} pairs reachable, {t['isolation_leaks']} leaks"
             for kind, t in data.get("network_types", {}).items()]
    return "".join(lines)
