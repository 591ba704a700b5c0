"""How much one request may carry, and how large the status an agent reports may grow.

Request bodies: 1 MiB unless a route says otherwise. The largest legitimate single-resource body is a
few KiB (a subnet with its pools and routes, a port with its address pairs), and the largest agent
report (below) is 128 KiB, so 1 MiB is eight times anything valid while bounding what one request can
make the server buffer. A route that carries many resources at once names its own limit in `routes`.

Status fields are shipped to every agent in every snapshot, so they are capped much tighter:
- an agent's heartbeat (`Host.agent`): 128 KiB serialized. A host reporting 4 PFs x 256 VFs (the most
  an E810 offers) sends 91 KB; without SR-IOV a report is about 200 bytes.
- a port's `status_detail`: 4 KiB, room for a reason and a few kernel messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from kvnet.errors import InvalidInput

KiB = 1024
MiB = 1024 * KiB

DEFAULT_BODY_LIMIT = 1 * MiB
AGENT_REPORT_MAX_BYTES = 128 * KiB
STATUS_DETAIL_MAX_BYTES = 4 * KiB
# Deeper than any resource (a port's binding_profile or an agent report is 3-4 levels): a limit far
# below the interpreter's recursion limit, so nothing that walks a stored value can overflow the stack.
MAX_JSON_DEPTH = 32
# What the store can hold (SQLite INTEGER, etcd int64): larger numbers are refused at the door.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class BodyLimits:
    """The largest body each route accepts: `default`, or an override per route, keyed by method and
    path template as the OpenAPI document spells them (`{"POST /v1/batch": 16 * MiB}`)."""

    def __init__(self, default: int = DEFAULT_BODY_LIMIT, routes: Mapping[str, int] | None = None) -> None:
        self.default = default
        self.routes = dict(routes or {})
        self._patterns = [(*_route_pattern(route), limit) for route, limit in self.routes.items()]

    def for_request(self, method: str, path: str) -> int:
        for route_method, pattern, limit in self._patterns:
            if route_method == method and pattern.fullmatch(path):
                return limit
        return self.default

    def for_operation(self, method: str, template: str) -> int:
        return self.routes.get(f"{method.upper()} {template}", self.default)


def _route_pattern(route: str) -> tuple[str, re.Pattern[str]]:
    method, template = route.split(" ", 1)
    parts = re.split(r"\{[^/}]+\}", template)  # a path parameter matches one segment
    return method.upper(), re.compile("[^/]+".join(re.escape(p) for p in parts))


def serialized_size(value: Any) -> int:
    """Bytes `value` takes as the store writes it (compact JSON)."""
    return len(json.dumps(value, separators=(",", ":")))


def check_size(field_name: str, value: Any, max_bytes: int) -> None:
    """Refuse a status field larger than `max_bytes` serialized, naming the field and both sizes."""
    size = serialized_size(value)
    if size > max_bytes:
        raise InvalidInput(f"is {size} bytes serialized; at most {max_bytes} are accepted", field=field_name)
