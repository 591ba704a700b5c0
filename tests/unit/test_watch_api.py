"""Snapshot + watch through the API: ordered events, resumption from a revision, compaction (410)."""

from __future__ import annotations

import threading

from kvnet.agent.model import CloudModel
from kvnet.client import Client
from kvnet.errors import Compacted
from kvnet.server.testing import RunningServer
from kvnet.store.sqlite import SQLiteStore


def test_snapshot_then_watch_reproduces_the_store(client: Client) -> None:
    client.create("hosts", {"name": "h1", "tunnel_ip": "192.0.2.1"})
    model = CloudModel.from_snapshot(client.snapshot())
    net = client.create("networks", {"name": "n"})
    client.create("subnets", {"network_id": net["id"], "cidr": "10.0.0.0/24"})
    port = client.create("ports", {"network_id": net["id"], "binding_host": "h1"})
    client.update("ports", port["id"], {"name": "renamed"})
    answer = client.watch(model.revision + 1, timeout=0)
    revisions = [e["revision"] for e in answer["events"]]
    assert revisions == sorted(revisions) and revisions[0] == model.revision + 1
    for event in answer["events"]:
        model.apply_event(event)
    assert model.revision == answer["revision"]
    assert model.ports[port["id"]].name == "renamed"
    fresh = CloudModel.from_snapshot(client.snapshot())
    assert {k: set(v) for k, v in fresh.by_kind.items()} == {k: set(v) for k, v in model.by_kind.items()}


def test_resume_from_the_middle(client: Client) -> None:
    first = client.create("networks", {"name": "a"})
    rev = client.health()["revision"]
    client.create("networks", {"name": "b"})
    events = client.watch(rev + 1, timeout=0)["events"]
    assert [e["value"]["name"] for e in events if e["key"].startswith("/kvnet/networks/")] == ["b"]
    assert all(e["value"]["id"] != first["id"] for e in events if e["value"])


def test_long_poll_returns_as_soon_as_something_changes(api_server: RunningServer) -> None:
    with api_server.client() as client:
        rev = client.health()["revision"]
        timer = threading.Timer(0.2, lambda: Client(api_server.url).create("networks", {"name": "late"}))
        timer.start()
        answer = client.watch(rev + 1, timeout=20)
        timer.join()
        assert [e["value"]["name"] for e in answer["events"] if e["key"].startswith("/kvnet/networks/")] == ["late"]


def test_compacted_revision_is_410_with_the_oldest_kept(api_server: RunningServer) -> None:
    with api_server.client() as client:
        for i in range(5):
            client.create("networks", {"name": f"n{i}"})
        store = api_server.cloud.store
        assert isinstance(store, SQLiteStore)
        store.compact(4)
        try:
            client.watch(1, timeout=0)
            raise AssertionError("expected Compacted")
        except Compacted as exc:
            assert exc.compact_revision == 4
