"""Dataplane drivers: the only code that touches the kernel (Linux, OVS; SR-IOV VFs in kvnet.agent.vf).

Every driver turns a `HostPlan` (kvnet.plan) into its own objects and reconciles them level-triggered,
as one ordered list of per-kind managers (`kvnet.dataplane.manager`): each observes what it owns, diffs,
applies, and returns a typed `PhaseResult`, so one pass converges whatever the host looked like before
and says, object by object, what it could not put in place.
"""

from __future__ import annotations

from typing import Protocol

from kvnet.dataplane.result import Failure, PhaseResult, ReconcileResult
from kvnet.plan import HostPlan


class Driver(Protocol):
    def reconcile(self, plan: HostPlan) -> ReconcileResult: ...


__all__ = ["Driver", "Failure", "PhaseResult", "ReconcileResult"]
