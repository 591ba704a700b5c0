"""`kvnet bench fip`: floating IP convergence -- FIP create (API call) -> first reply to a ping from the
lab's internet -- per router mode, p50/p99, in a 3-host lab with server and agents.

Each sample creates a FIP for one of the VMs (on h2 and h3), pings it from `<lab>-ext` every 20 ms
until the first reply, then deletes it. The time includes the API transaction, the watch event, the
agent's reconcile (address, NAT table, gratuitous ARP) and the internet's ARP resolution.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kvnet.bench.results import envelope, summarize
from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab.demo import DemoVM, _percentile, boot_vm
from kvnet.lab.demo_routing import add_fip, build_routed_cloud, ext_ping_until
from kvnet.lab.lab import Lab
from kvnet.lab.spec import default_spec

Progress = Callable[[str], None]
MODES = ("centralized", "distributed")


def measure_fip_convergence(mode: str, samples: int = 30, lab_name: str = "kvbf",
                            progress: Progress = lambda _: None) -> dict[str, Any]:
    lab = Lab(lab_name)
    lab.up(default_spec(lab_name, 3), control_plane=True)
    times: list[float] = []
    failures = 0
    try:
        with Client(control.server_url(lab)) as client:
            cloud = build_routed_cloud(client, mode)
            vms = [DemoVM("f2", "h2", "net-a", "10.1.0.21"), DemoVM("f3", "h3", "net-b", "10.2.0.31")]
            for vm in vms:
                boot_vm(lab, client, vm)
            for i in range(samples):
                vm = vms[i % len(vms)]
                started = time.monotonic()
                ip = add_fip(client, cloud, vm.name)
                if ext_ping_until(lab, ip) is None:
                    failures += 1
                else:
                    times.append((time.monotonic() - started) * 1000)
                client.delete("floatingips", client.find("floatingips", f"fip-{vm.name}")["id"])
                if (i + 1) % 10 == 0:
                    progress(f"{mode}: {i + 1}/{samples} floating IPs")
    finally:
        lab.down()
    ordered = sorted(times)
    return {"mode": mode, "samples": samples, "failures": failures,
            "p50_ms": _percentile(ordered, 50) if ordered else None,
            "p99_ms": _percentile(ordered, 99) if ordered else None, "spread": summarize(ordered)}


def run_fip_bench(samples: int = 30, progress: Progress = lambda _: None) -> dict[str, Any]:
    results = {}
    for mode in MODES:
        progress(f"{mode} router: {samples} floating IPs, create -> reachable from the internet")
        results[mode] = measure_fip_convergence(mode, samples, progress=progress)
    return envelope("fip", results)


def markdown(data: dict[str, Any]) -> str:
    lines = [f"# Floating IP convergence (create -> first reply from the internet)\n\n{data['date']}, kvnet "
             f"{data['kvnet_version']}, {data['machine']['nproc']} cores, 3-host lab\n"]
    for mode, r in data["results"].items():
        p50 = "n/a" if r["p50_ms"] is None else f"{r['p50_ms']:.0f} ms"
        p99 = "n/a" if r["p99_ms"] is None else f"{r['p99_ms']:.0f} ms"
        lines.append(f"- {mode}: p50 {p50}, p99 {p99} over {r['samples']} FIPs, failures {r['failures']}")
    return "\n".join(lines) + "\n"
