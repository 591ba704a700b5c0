"""Dataplane drivers: the only code that touches the kernel (Linux now; OVS and SR-IOV next).

Every driver turns a `HostPlan` into its own objects and reconciles them level-triggered:
observe -> diff -> apply, so one pass converges whatever the host looked like before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from kvnet.plan import HostPlan


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconcile pass did. Counts are keyed by object kind (link, port, fdb, neigh...).

    `errors` is non-empty when some changes failed; they stay un-applied and the next reconcile
    (which re-observes the kernel) retries exactly them.
    """

    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    missing_ports: tuple[str, ...] = ()
    missing_devices: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    duration_ms: float = 0.0

    @property
    def total_changes(self) -> int:
        return sum(self.added.values()) + sum(self.changed.values()) + sum(self.removed.values())

    @property
    def ok(self) -> bool:
        return not self.errors


class Driver(Protocol):
    def reconcile(self, plan: HostPlan) -> ReconcileResult: ...
