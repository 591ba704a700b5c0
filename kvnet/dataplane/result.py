"""Typed results of a reconcile pass: what each manager changed, and every object it could not put in place.

A `Failure` names the object (kind, key), the ports it serves on this host and the message the kernel
(or OVS, or nft) gave. Two sorts:
- `observe=False`: the object could not be applied. It stays a difference and the next pass retries it;
  the ports it serves are not ACTIVE (the agent reports ERROR with the message).
- `observe=True`: the manager could not read what it owns, so for this pass it is *unknown*: the manager
  changed nothing it owns (reading failed never means "absent"), and the ports depending on it are
  neither ACTIVE nor flipped to DOWN -- they stay as they were reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Failure:
    kind: str  # link, port, fdb, neigh, pin, redirects, router_ns, route, nat, ovsdb, flows, ... (or a phase)
    key: str  # which object: a device, "<mac> dev <dev>", a namespace, a bridge
    message: str  # as the kernel or the tool said it
    ports: tuple[str, ...] = ()  # the ports it serves on this host
    observe: bool = False  # True: reading failed, the state is unknown (nothing was changed)

    def __str__(self) -> str:
        return f"{'reading ' if self.observe else ''}{self.kind} {self.key}: {self.message}"


@dataclass
class PhaseResult:
    """One manager's pass: counts per object kind, failures, and the ports whose device does not exist."""

    phase: str
    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # port id -> its device, not present on the host

    def unknown(self, message: str, ports: Iterable[str], key: str = "*") -> PhaseResult:
        """This manager could not read its objects: it changes nothing this pass."""
        self.failures.append(Failure(self.phase, key, message, tuple(sorted(set(ports))), observe=True))
        return self

    def fail(self, kind: str, key: str, message: str, ports: Iterable[str] = ()) -> None:
        self.failures.append(Failure(kind, key, message, tuple(sorted(set(ports)))))

    @property
    def total_changes(self) -> int:
        return sum(self.added.values()) + sum(self.changed.values()) + sum(self.removed.values())


def _merge(into: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    for kind, n in more.items():
        into[kind] = into.get(kind, 0) + n
    return into


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconcile pass did. Counts are keyed by object kind (link, port, fdb, neigh...).

    `failures` lists every object not put in place (see `Failure`); `errors` is the same as text. A port
    is in place when no failure serves it and its device exists (`missing_ports` otherwise).
    """

    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    missing_ports: tuple[str, ...] = ()
    missing_devices: tuple[str, ...] = ()
    failures: tuple[Failure, ...] = ()
    duration_ms: float = 0.0
    phases: tuple[str, ...] = ()  # the managers that ran, in order

    @classmethod
    def combine(cls, results: Iterable[PhaseResult], duration_ms: float) -> ReconcileResult:
        added: dict[str, int] = {}
        changed: dict[str, int] = {}
        removed: dict[str, int] = {}
        missing: dict[str, str] = {}
        failures: list[Failure] = []
        phases = []
        for result in results:
            phases.append(result.phase)
            _merge(added, result.added)
            _merge(changed, result.changed)
            _merge(removed, result.removed)
            missing.update(result.missing)
            failures += result.failures
        ordered = sorted(missing)
        return cls(added, changed, removed, tuple(ordered), tuple(missing[p] for p in ordered), tuple(failures),
                   duration_ms, tuple(phases))

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(str(f) for f in self.failures)

    @property
    def total_changes(self) -> int:
        return sum(self.added.values()) + sum(self.changed.values()) + sum(self.removed.values())

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def unknown(self) -> bool:
        """Some manager could not read its objects this pass."""
        return any(f.observe for f in self.failures)

    def port_failures(self, *, observe: bool) -> dict[str, list[Failure]]:
        """port id -> the failures (apply: observe False; reading: True) of objects it needs."""
        out: dict[str, list[Failure]] = {}
        for failure in self.failures:
            if failure.observe == observe:
                for port in failure.ports:
                    out.setdefault(port, []).append(failure)
        return out
