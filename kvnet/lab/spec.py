"""What a lab looks like (Mininet's Topo): plain data, no side effects. `Lab.up(spec)` builds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvnet.lab.names import DEFAULT_LAB, check_host_name, check_lab_name
from kvnet.model.resources import Dataplane, HostRole


@dataclass(frozen=True)
class HostSpec:
    name: str
    roles: tuple[HostRole, ...] = ("compute",)
    dataplane: Dataplane = "linux"

    def __post_init__(self) -> None:
        check_host_name(self.name)
        object.__setattr__(self, "roles", tuple(self.roles))
        if not self.roles:
            raise ValueError(f"host {self.name}: give at least one role (compute, network)")


@dataclass(frozen=True)
class LabSpec:
    name: str
    hosts: tuple[HostSpec, ...]

    def __post_init__(self) -> None:
        check_lab_name(self.name)
        object.__setattr__(self, "hosts", tuple(self.hosts))  # accept a list, keep the spec hashable
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError(f"lab {self.name}: host names repeat: {names}")
        if not 1 <= len(self.hosts) <= 253:
            raise ValueError(f"lab {self.name}: 1 to 253 hosts, not {len(self.hosts)}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name,
                "hosts": [{"name": h.name, "roles": list(h.roles), "dataplane": h.dataplane}
                          for h in self.hosts]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabSpec:
        return cls(name=data["name"],
                   hosts=tuple(HostSpec(h["name"], tuple(h["roles"]), h["dataplane"]) for h in data["hosts"]))


def default_spec(name: str = DEFAULT_LAB, hosts: int = 3, dataplane: Dataplane = "linux") -> LabSpec:
    """h1 is the network node and a compute node; h2..hN are compute nodes."""
    specs = [HostSpec(f"h{i}", ("network", "compute") if i == 1 else ("compute",), dataplane)
             for i in range(1, hosts + 1)]
    return LabSpec(name, tuple(specs))
