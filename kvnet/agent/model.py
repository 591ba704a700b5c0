"""The agent's in-memory copy of the cloud: a snapshot plus the watch events applied since."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvnet.model.resources import (
    RESOURCE_TYPES,
    CloudConfig,
    FloatingIP,
    Host,
    Network,
    Port,
    Resource,
    Router,
    Subnet,
)


@dataclass
class CloudModel:
    revision: int = 0
    config: CloudConfig = field(default_factory=CloudConfig)
    by_kind: dict[str, dict[str, Resource]] = field(
        default_factory=lambda: {kind: {} for kind in RESOURCE_TYPES})

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> CloudModel:
        model = cls(revision=int(snapshot["revision"]))
        for kind, items in snapshot["resources"].items():
            for data in items:
                model.put(kind, data)
        return model

    @classmethod
    def from_resources(cls, resources: list[Resource], revision: int = 0) -> CloudModel:
        """Build a model directly (tests, benchmarks)."""
        model = cls(revision=revision)
        for obj in resources:
            if isinstance(obj, CloudConfig):
                model.config = obj
            else:
                model.by_kind[obj.kind][obj.id] = obj
        return model

    def put(self, kind: str, data: dict[str, Any]) -> None:
        cls = RESOURCE_TYPES.get(kind)
        if cls is None:
            return
        obj = cls.model_validate(data)
        if isinstance(obj, CloudConfig):
            self.config = obj
        else:
            self.by_kind[kind][obj.id] = obj

    def apply_event(self, event: dict[str, Any]) -> None:
        """One watch event (`{"type", "key", "value", "revision"}`); keys are /kvnet/<kind>/<id>."""
        _, _, kind, rid = event["key"].split("/", 3)
        if event["type"] == "put":
            self.put(kind, event["value"])
        elif kind == CloudConfig.kind:
            self.config = CloudConfig()
        else:
            self.by_kind.get(kind, {}).pop(rid, None)
        self.revision = max(self.revision, int(event["revision"]))

    # Typed views for compile.
    @property
    def hosts(self) -> dict[str, Host]:
        return self.by_kind[Host.kind]  # type: ignore[return-value]

    @property
    def networks(self) -> dict[str, Network]:
        return self.by_kind[Network.kind]  # type: ignore[return-value]

    @property
    def subnets(self) -> dict[str, Subnet]:
        return self.by_kind[Subnet.kind]  # type: ignore[return-value]

    @property
    def ports(self) -> dict[str, Port]:
        return self.by_kind[Port.kind]  # type: ignore[return-value]

    @property
    def routers(self) -> dict[str, Router]:
        return self.by_kind[Router.kind]  # type: ignore[return-value]

    @property
    def floatingips(self) -> dict[str, FloatingIP]:
        return self.by_kind[FloatingIP.kind]  # type: ignore[return-value]
