"""`kvnet bench security`: how fast security-group changes take effect (issue #14), p50/p99, in a 3-host
lab with server and agents (Linux hosts, or OVS with `--dataplane ovs`).

- rule added -> effective: VM `a` (h1) pings VM `b` (h2) every 20 ms; `b`'s group has no ICMP rule;
  the sample is from the API call adding one to its first answered ping; the rule is removed again
  (and pings stop being answered) before the next sample.
- remote-group member added -> allowed: `b` accepts ICMP only from members of group `members`; a port
  of VM `c` (h3) joins it (a port update) and the sample runs to `c`'s first answered ping; it leaves
  again before the next sample.
Both include the API transaction, the watch event and every host's agent pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kvnet.bench.results import envelope, summarize
from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab.demo import DemoVM, _percentile, boot_vm
from kvnet.lab.lab import Lab
from kvnet.lab.ovs import lab_spec
from kvnet.lab.probe import ping, ping_until

Progress = Callable[[str], None]
DEADLINE_S = 5.0
CIDR = "10.93.0.0/24"


def _settle(lab: Lab, vm: str, ip: str, answered: bool) -> None:
    """Wait (with a deadline) until pings from `vm` to `ip` are answered, or are not."""
    end = time.monotonic() + DEADLINE_S
    while ping(lab, vm, ip, timeout=0.2) != answered:
        if time.monotonic() > end:
            raise TimeoutError(f"pings from {vm} to {ip} still {'un' if answered else ''}answered")


def run_security_bench(samples: int = 20, dataplane: str = "linux", lab_name: str = "kvbs",
                       progress: Progress = lambda _: None) -> dict[str, Any]:
    lab = Lab(lab_name)
    lab.up(lab_spec(lab_name, 3, dataplane), control_plane=True)
    rule_ms: list[float] = []
    member_ms: list[float] = []
    failures = 0
    try:
        with Client(control.server_url(lab)) as client:
            net = client.create("networks", {"name": "sec"})
            client.create("subnets", {"network_id": net["id"], "cidr": CIDR})
            members = client.create("securitygroups", {"name": "members"})
            target = client.create("securitygroups", {"name": "target", "rules": [{"direction": "egress"}]})
            a, b, c = (DemoVM("a", "h1", "sec", "10.93.0.11"), DemoVM("b", "h2", "sec", "10.93.0.12"),
                       DemoVM("c", "h3", "sec", "10.93.0.13"))
            boot_vm(lab, client, a, security_group_ids=[members["id"]])
            boot_vm(lab, client, b, security_group_ids=[target["id"]])
            boot_vm(lab, client, c, security_group_ids=[])
            c_port = client.find("ports", "c")["id"]
            icmp = {"direction": "ingress", "protocol": "icmp"}
            for i in range(samples):
                _settle(lab, "a", b.ip, answered=False)
                started = time.monotonic()
                rule = client.add_rule(target["id"], icmp)
                if ping_until(lab, "a", b.ip, DEADLINE_S) is None:
                    failures += 1
                else:
                    rule_ms.append((time.monotonic() - started) * 1000)
                client.remove_rule(target["id"], rule["id"])
                if (i + 1) % 10 == 0:
                    progress(f"{dataplane}: {i + 1}/{samples} rules added")
            member_rule = client.add_rule(target["id"], {**icmp, "remote_group_id": members["id"]})
            for i in range(samples):
                _settle(lab, "c", b.ip, answered=False)
                started = time.monotonic()
                client.update("ports", c_port, {"security_group_ids": [members["id"]]})
                if ping_until(lab, "c", b.ip, DEADLINE_S) is None:
                    failures += 1
                else:
                    member_ms.append((time.monotonic() - started) * 1000)
                client.update("ports", c_port, {"security_group_ids": []})
                if (i + 1) % 10 == 0:
                    progress(f"{dataplane}: {i + 1}/{samples} members added")
            client.remove_rule(target["id"], member_rule["id"])
    finally:
        lab.down()
    return {"dataplane": dataplane, "samples": samples, "failures": failures,
            "rule_added_ms": _stats(rule_ms), "remote_group_member_added_ms": _stats(member_ms)}


def _stats(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {"p50": round(_percentile(ordered, 50), 1) if ordered else None,
            "p99": round(_percentile(ordered, 99), 1) if ordered else None, "spread": summarize(ordered)}


def run_bench(samples: int = 20, dataplanes: tuple[str, ...] = ("linux", "ovs"),
              progress: Progress = lambda _: None) -> dict[str, Any]:
    return envelope("security", {dp: run_security_bench(samples, dp, progress=progress) for dp in dataplanes})


def markdown(data: dict[str, Any]) -> str:
    lines = [f"# Security-group changes: API call -> effective\n\n{data['date']}, kvnet {data['kvnet_version']}, "
             f"{data['machine']['nproc']} cores, 3-host lab; goal: rule added p99 <= 300 ms\n"]
    for dp, r in data["results"].items():
        rule, member = r["rule_added_ms"], r["remote_group_member_added_ms"]
        lines.append(f"- {dp}: rule added p50/p99 {rule['p50']}/{rule['p99']} ms; remote-group member added "
                     f"p50/p99 {member['p50']}/{member['p99']} ms ({r['samples']} samples each, "
                     f"{r['failures']} failures)")
    return "\n".join(lines) + "\n"
