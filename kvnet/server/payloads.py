"""Bodies of the routes that are not plain CRUD, which FastAPI validates against these models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kvnet.model.resources import PortStatus

# An agent beats every 10 s; a day between heartbeats is far beyond any sane setting.
MAX_HEARTBEAT_INTERVAL = 86_400.0


class SubnetRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subnet_id: str


class PortStatusReport(BaseModel):
    """What an agent reports about a port it wired: the status, and how it got there."""

    model_config = ConfigDict(extra="forbid")
    status: PortStatus
    detail: dict[str, Any] | None = None


class AgentReport(BaseModel):
    """A heartbeat: whatever the agent tells about itself (stored as `Host.agent`). Only the interval
    is read by the server (liveness: a host is down after three missed heartbeats)."""

    model_config = ConfigDict(extra="allow")
    heartbeat_interval: float | None = Field(None, gt=0, le=MAX_HEARTBEAT_INTERVAL, allow_inf_nan=False)
