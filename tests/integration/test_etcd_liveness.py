"""Host liveness, the same to the CLI on both engines: up while heartbeats come, down within the TTL
after they stop, and the host's ports read DOWN. On etcd through a lease that another API server
keeps alive just as well (a heartbeat may reach any server)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvnet.etcd.cluster import running_cluster
from kvnet.server.cloud import Cloud
from kvnet.server.liveness import ALIVE_PREFIX, ttl_for
from kvnet.store.base import Store
from kvnet.store.etcd import EtcdStore
from kvnet.store.sqlite import SQLiteStore

INTERVAL = {"heartbeat_interval": 0.4}  # TTL 1.2 s (2 s once rounded up to an etcd lease)


@pytest.fixture(params=["sqlite", "etcd"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two store handles on one cloud: two API servers' view of it."""
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "k.db"), SQLiteStore(tmp_path / "k.db")
        return
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed")
    with running_cluster(tmp_path / "etcd", 3) as cluster:
        yield EtcdStore(cluster.endpoints), EtcdStore(list(reversed(cluster.endpoints)))


def status(cloud: Cloud, host: str) -> str:
    return cloud.get("hosts", host)["status"]


@pytest.mark.timeout(60)
def test_host_goes_down_within_its_ttl_and_its_ports_say_so(stores: tuple[Store, Store]) -> None:
    one, two = Cloud(stores[0]), Cloud(stores[1])
    one.create("hosts", {"name": "h1", "tunnel_ip": "192.0.2.1"})
    net = one.create("networks", {"name": "n"})
    one.create("subnets", {"network_id": net["id"], "cidr": "10.1.0.0/24"})
    port = one.create("ports", {"network_id": net["id"], "binding_host": "h1"})
    one.set_port_status(port["id"], "ACTIVE", {}, "h1")
    assert status(one, "h1") == "unknown"
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # heartbeats alternate between the two servers
        (one if int(time.monotonic() * 5) % 2 else two).host_heartbeat("h1", INTERVAL)
        assert status(one, "h1") == status(two, "h1") == "up"
        assert one.get("ports", port["id"])["status"] == "ACTIVE"
        time.sleep(0.2)  # the agent's heartbeat period, not a synchronisation
    stopped = time.monotonic()
    while status(two, "h1") == "up":
        assert time.monotonic() - stopped < ttl_for(INTERVAL) + 2.5, "still up long after its TTL"
        time.sleep(0.05)
    down_after = time.monotonic() - stopped
    listed = {h["id"]: h for h in two.list("hosts")}
    assert listed["h1"]["status"] == "down" and listed["h1"]["last_seen"] is not None
    seen = two.get("ports", port["id"])
    assert seen["status"] == "DOWN" and seen["status_detail"]["host_status"] == "down"
    two.host_heartbeat("h1", INTERVAL)
    assert status(one, "h1") == "up"
    print(f"\ndown {down_after:.2f} s after the last heartbeat (TTL {ttl_for(INTERVAL)} s)")
    if isinstance(stores[0], EtcdStore):
        assert stores[0].keys(ALIVE_PREFIX) == [f"{ALIVE_PREFIX}h1"]
