"""What the agent tells the server after a pass: each port's status, and a summary for the heartbeat. Pure.

A port is ACTIVE only when every object it needs here is in place this pass. Otherwise, with a short
reason and the kernel's own messages (a few, truncated -- the server caps status fields):
- ERROR: an object it needs was refused (the pass retries it), or its name collides on this host;
- DOWN: its device does not exist on this host (the hypervisor has not plugged it, or unplugged it);
- nothing at all when what it needs could not be read this pass (unknown): it stays as it was reported,
  so a failed read never flips a working port to DOWN.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kvnet.dataplane.result import Failure, ReconcileResult
from kvnet.plan import HostPlan

MAX_MESSAGES = 3
MAX_MESSAGE_CHARS = 300
MAX_HEARTBEAT_FAILURES = 10


@dataclass(frozen=True)
class PortState:
    status: str  # ACTIVE | DOWN | ERROR
    reason: str = ""
    messages: tuple[str, ...] = ()

    def detail(self, host: str) -> dict[str, Any]:
        detail: dict[str, Any] = {"host": host}
        if self.reason:
            detail["reason"] = self.reason
        if self.messages:
            detail["errors"] = list(self.messages)
        return detail


def truncate(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[:limit - 3] + "..."


def _messages(failures: list[Failure]) -> tuple[str, ...]:
    return tuple(truncate(str(f)) for f in failures[:MAX_MESSAGES])


def port_states(plan: HostPlan, result: ReconcileResult) -> dict[str, PortState]:
    """port id -> what to report; ports whose state is unknown this pass are left out."""
    failed = result.port_failures(observe=False)
    unknown = result.port_failures(observe=True)
    missing = dict(zip(result.missing_ports, result.missing_devices, strict=True))
    states: dict[str, PortState] = {}
    for conflict in plan.conflicts:
        for port_id in conflict.port_ids:
            states[port_id] = PortState("ERROR", "name collision on this host", (truncate(conflict.message),))
    for port in plan.ports:
        if port.port_id in failed:
            errors = failed[port.port_id]
            states[port.port_id] = PortState("ERROR", f"{len(errors)} object(s) not applied", _messages(errors))
        elif port.port_id in unknown:
            continue
        elif port.port_id in missing:
            states[port.port_id] = PortState("DOWN", f"device {missing[port.port_id]} not present on this host")
        else:
            states[port.port_id] = PortState("ACTIVE")
    return states


def reconcile_summary(plan: HostPlan, result: ReconcileResult, retry_in_s: float | None) -> dict[str, Any]:
    """The last pass, for the heartbeat (bounded: the server caps heartbeat blobs)."""
    return {
        "at": round(time.time(), 3),
        "duration_ms": round(result.duration_ms, 1),
        "changed": result.total_changes,
        "failures": [{"kind": f.kind, "key": truncate(f.key, 120), "message": truncate(f.message),
                      "unknown": f.observe} for f in result.failures[:MAX_HEARTBEAT_FAILURES]],
        "failure_count": len(result.failures),
        "pending_retries": sum(not f.observe for f in result.failures),
        "unknown": result.unknown,
        "retry_in_s": None if retry_in_s is None else round(retry_in_s, 2),
        "ports": len(plan.ports),
        "routers": len(plan.routers),
        "conflicts": [truncate(c.message) for c in plan.conflicts[:MAX_MESSAGES]],
    }
