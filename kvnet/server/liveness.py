"""Host liveness: a host is up while its agent's heartbeats keep coming, and down within its TTL
after they stop (agent killed, host dead, network cut).

On etcd each heartbeat refreshes a lease-bound key `/kvnet/alive/<host>` (the lease is granted with
TTL = 3 heartbeat intervals and kept alive by every heartbeat, through whichever API server the agent
reached): etcd deletes the key when the lease runs out, so "down" is decided by the etcd leader's
clock, not by comparing timestamps written by several servers. On SQLite (one server) the same rule
is time-based: `last_seen` older than the TTL means down. Both read the same to the CLI.
"""

from __future__ import annotations

import math
import time
from typing import Any

from kvnet.model.resources import KEY_PREFIX
from kvnet.store.base import Store

ALIVE_PREFIX = f"{KEY_PREFIX}alive/"
DEFAULT_HEARTBEAT_INTERVAL = 10.0
TTL_HEARTBEATS = 3  # missed heartbeats before a host is down


def ttl_for(agent: dict[str, Any]) -> float:
    return TTL_HEARTBEATS * float(agent.get("heartbeat_interval") or DEFAULT_HEARTBEAT_INTERVAL)


class Liveness:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.leased = hasattr(store, "lease_put")

    def beat(self, host: str, agent: dict[str, Any]) -> None:
        if self.leased:
            self.store.lease_put(ALIVE_PREFIX + host, {"host": host}, math.ceil(ttl_for(agent)))  # type: ignore[attr-defined]

    def statuses(self, hosts: list[dict[str, Any]]) -> dict[str, str]:
        """host id -> up | down | unknown (never heard from)."""
        alive = {k.removeprefix(ALIVE_PREFIX) for k in self.store.keys(ALIVE_PREFIX)} if self.leased else None
        now = time.time()
        result = {}
        for host in hosts:
            if host.get("last_seen") is None:
                result[host["id"]] = "unknown"
            elif alive is not None:
                result[host["id"]] = "up" if host["id"] in alive else "down"
            else:
                result[host["id"]] = "up" if now - host["last_seen"] < ttl_for(host.get("agent") or {}) else "down"
        return result

    def annotate_hosts(self, hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        status = self.statuses(hosts)
        return [{**h, "status": status[h["id"]]} for h in hosts]

    def annotate_ports(self, ports: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A port bound to a host that is down reads DOWN, with `host_status: down` in its detail."""
        down = {h for h, s in self.statuses(hosts).items() if s == "down"}
        return [{**p, "status": "DOWN", "status_detail": {**p.get("status_detail", {}), "host_status": "down"}}
                if p.get("binding_host") in down else p for p in ports]
