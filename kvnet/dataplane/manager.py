"""A driver's pass = its managers, in order. Each manager owns one kind of object (Felix's managers,
Faucet's one order table): it observes what it owns, diffs against the plan, applies the difference and
returns a `PhaseResult`. The order lives in one list per driver, with the reason for it
(`kvnet.dataplane.linux.driver.PHASES`, `kvnet.dataplane.ovs.driver.PHASES`).

A manager that raises (a bug, or a tool that is gone) is reported like one that could not read its
objects: unknown, for every port of the plan; the managers after it still run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from kvnet.dataplane.result import PhaseResult, ReconcileResult
from kvnet.plan import HostPlan

log = logging.getLogger("kvnet.dataplane")


class Pass(Protocol):
    """What the managers of one pass share: the plan, and whatever an earlier manager read for a later one."""

    plan: HostPlan


P = TypeVar("P", bound=Pass, contravariant=True)


class Manager(Protocol, Generic[P]):
    phase: str

    def reconcile(self, ctx: P) -> PhaseResult: ...


def run_phases(managers: Sequence[Manager[P]], ctx: P) -> ReconcileResult:
    start = time.perf_counter()
    results = []
    for manager in managers:
        try:
            results.append(manager.reconcile(ctx))
        except Exception as exc:  # the pass goes on; this manager's objects are unknown until the next one
            log.exception("%s failed", manager.phase)
            results.append(PhaseResult(manager.phase).unknown(f"{type(exc).__name__}: {exc}",
                                                              (p.port_id for p in ctx.plan.ports)))
    return ReconcileResult.combine(results, (time.perf_counter() - start) * 1000)
