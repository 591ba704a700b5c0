"""`kvnet bench control`: how fast the control plane turns intent into a working dataplane.

- convergence: port create -> first successful ping from the new VM to a VM on another host, over
  `ports` ports in a real lab (server + one agent per host); p50/p99;
- programming: 10,000 FDB + neighbour entries applied on one host, and a no-op resync of that state
  (`kvnet.bench.programming`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from kvnet.bench.programming import run_programming_bench
from kvnet.bench.results import envelope, summarize
from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab.demo import CONVERGE_DEADLINE_S, DemoVM, _percentile, boot_vm
from kvnet.lab.lab import Lab
from kvnet.lab.probe import ping_until
from kvnet.lab.spec import default_spec
from kvnet.lab.vm import delete_vm

Progress = Callable[[str], None]


def measure_convergence(ports: int = 50, hosts: int = 3, lab_name: str = "kvbc",
                        progress: Progress = lambda _: None, store: str = "sqlite") -> dict[str, Any]:
    lab = Lab(lab_name)
    lab.up(default_spec(lab_name, hosts), control_plane=True, store=store)
    samples: list[float] = []
    failures = 0
    try:
        with Client(control.server_url(lab)) as client:
            network = client.create("networks", {"name": "bench-net"})
            client.create("subnets", {"network_id": network["id"], "cidr": "10.50.0.0/20"})
            anchor = DemoVM("anchor", "h1", "bench-net", "10.50.0.10")
            boot_vm(lab, client, anchor)
            others = sorted(h for h in lab.hosts() if h != "h1") or ["h1"]
            for i in range(ports):
                vm = DemoVM(f"c{i}", others[i % len(others)], "bench-net", f"10.50.1.{i + 1}")
                started = time.monotonic()
                boot_vm(lab, client, vm)
                if ping_until(lab, vm.name, anchor.ip, CONVERGE_DEADLINE_S) is None:
                    failures += 1
                else:
                    samples.append((time.monotonic() - started) * 1000)
                if (i + 1) % 10 == 0:
                    progress(f"convergence: {i + 1}/{ports} ports, p50 so far "
                             f"{statistics.median(samples) if samples else float('nan'):.0f} ms")
                delete_vm(lab, vm.name)  # keep the lab small; the port stays, as its history
    finally:
        lab.down()
    ordered = sorted(samples)
    return {"ports": ports, "failures": failures,
            "p50_ms": statistics.median(ordered) if ordered else None,
            "p99_ms": _percentile(ordered, 99) if ordered else None,
            "spread": summarize(ordered), "goal_p99_ms": 500}


def run_control_bench(ports: int = 50, entries: int = 10_000, repeats: int = 3,
                      progress: Progress = lambda _: None) -> dict[str, Any]:
    progress(f"convergence over {ports} ports in a 3-host lab")
    convergence = measure_convergence(ports, progress=progress)
    progress(f"programming {entries} FDB + neighbour entries, {repeats} repeats")
    programming = run_programming_bench(entries=entries, repeats=repeats)
    return envelope("control", {"store": "sqlite", "convergence": convergence, "programming": programming})


def markdown(data: dict[str, Any]) -> str:
    c = data["results"]["convergence"]
    p = data["results"]["programming"]
    return (f"# Control-plane benchmark ({data['results']['store']})\n\n{data['date']}, kvnet "
            f"{data['kvnet_version']}, {data['machine']['nproc']} cores\n\n"
            f"- convergence (port create -> first ping), {c['ports']} ports: p50 {c['p50_ms']:.0f} ms, "
            f"p99 {c['p99_ms']:.0f} ms (goal p99 <= 500 ms), failures {c['failures']}\n"
            f"- programming {p['objects']} FDB + neighbour objects: {p['objects_per_s']['median']:.0f} objects/s "
            f"(goal >= 20,000); no-op resync {p['noop_resync_s']['median']:.2f} s (goal <= 1 s), "
            f"{p['noop_changes']} changes\n")
