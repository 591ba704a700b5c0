"""Bodies of the routes that are not plain CRUD: requests that FastAPI validates, and answers that the
API writes as plain JSON and these models only describe (for the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from kvnet.model.resources import RESOURCE_TYPES, PortStatus

MAX_OPERATIONS = 10_000  # in one batch (kvnet.server.batch)

# An agent beats every 10 s; a day between heartbeats is far beyond any sane setting.
MAX_HEARTBEAT_INTERVAL = 86_400.0


# -- requests -------------------------------------------------------------------------------------
class SubnetRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subnet_id: str


class PortStatusReport(BaseModel):
    """What an agent reports about a port it wired: the status, how it got there, and the reporting
    host (accepted only from the port's binding host)."""

    model_config = ConfigDict(extra="forbid")
    status: PortStatus
    detail: dict[str, Any] | None = None
    host: str = Field(max_length=63)


class BatchOperation(BaseModel):
    """One write of a batch (`kvnet.server.batch`): create/update/delete of `kind`, a router interface,
    or the cloud config. The body is the single route's body for that kind."""

    model_config = ConfigDict(extra="forbid")
    op: Literal["create", "update", "delete", "add_interface", "remove_interface", "set_config"]
    kind: str | None = None
    id: str | None = None
    body: dict[str, Any] | None = None
    router_id: str | None = None
    subnet_id: str | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operations: list[BatchOperation] = Field(min_length=1, max_length=MAX_OPERATIONS)


class AgentReport(BaseModel):
    """A heartbeat: whatever the agent tells about itself (stored as `Host.agent`). Only the interval
    is read by the server (liveness: a host is down after three missed heartbeats)."""

    model_config = ConfigDict(extra="allow")
    heartbeat_interval: float | None = Field(None, gt=0, le=MAX_HEARTBEAT_INTERVAL, allow_inf_nan=False)


# -- answers --------------------------------------------------------------------------------------
class Health(BaseModel):
    ok: bool
    version: str
    revision: int


class WatchEvent(BaseModel):
    type: Literal["put", "delete"]
    key: str
    value: dict[str, Any] | None = Field(description="the resource as stored; null for a delete")
    revision: int


class WatchPage(BaseModel):
    revision: int = Field(description="the store's revision when the answer was read")
    events: list[WatchEvent]


SnapshotResources = create_model(  # one list per kind, whatever kinds there are
    "SnapshotResources", __config__=ConfigDict(extra="forbid"),
    **{kind: (list[cls], ...) for kind, cls in RESOURCE_TYPES.items()})  # type: ignore[call-overload]


class BatchResult(BaseModel):
    revision: int | None = Field(description="the store's revision after the batch (null if it wrote nothing)")
    results: list[Any] = Field(description="per operation: the resource written, or null for a delete")


class DrainResult(BaseModel):
    host: str
    unbound_ports: int
    revision: int


class Snapshot(BaseModel):
    revision: int
    resources: SnapshotResources  # type: ignore[valid-type]
