"""The etcd store under real faults: members killed with SIGKILL during writes and watches, history
compacted under an idle agent. Real 3-member clusters on loopback, a real `kvnet server` process, the
agent's own watch code (no dataplane needed for what is checked here)."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvnet.agent.loop import Agent
from kvnet.bench.api import ServerProcess
from kvnet.client import Client
from kvnet.errors import Compacted
from kvnet.etcd.cluster import EtcdCluster, Member, running_cluster
from kvnet.server.cloud import Cloud
from kvnet.store.etcd import EtcdStore

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with running_cluster(tmp_path / "etcd", 3) as c:
        yield c


@pytest.fixture
def server(cluster: EtcdCluster) -> Iterator[ServerProcess]:
    proc = ServerProcess(cluster.url)
    try:
        proc.wait_ready()
        yield proc
    finally:
        stop_now(proc)


def stop_now(server: ServerProcess) -> None:
    """SIGKILL: a graceful stop would wait for the agents' 25 s long-polls to end."""
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)


def wait_until(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s}s: {what}")
        time.sleep(0.02)


class Writer(threading.Thread):
    """Creates networks through the cloud service (one etcd Txn each, with a segment allocation)."""

    def __init__(self, cloud: Cloud) -> None:
        super().__init__(daemon=True)
        self.cloud = cloud
        self.created: list[str] = []
        self.done_at: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self.created.append(self.cloud.create("networks", {"name": f"n{i}"})["id"])
                self.done_at.append(time.monotonic())
            except Exception as exc:  # every failure is a test failure; keep writing to see the rest
                self.errors.append(repr(exc))
            i += 1

    def longest_gap(self, since: float) -> float:
        times = [since] + [t for t in self.done_at if t >= since]
        return max(b - a for a, b in itertools.pairwise(times)) if len(times) > 1 else float("inf")


class Watcher(threading.Thread):
    """Every event under a prefix, as (revision, key), through the store's own watch."""

    def __init__(self, store: EtcdStore, prefix: str) -> None:
        super().__init__(daemon=True)
        self.store, self.prefix = store, prefix
        self.seen: list[tuple[int, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        next_revision = 1
        while not self.stop.is_set():
            for event in self.store.wait_events(self.prefix, next_revision, timeout=0.5):
                self.seen.append((event.revision, event.key))
                next_revision = event.revision + 1


def agent_watching(url: str) -> tuple[Agent, threading.Thread]:
    agent = Agent("h1", Client(url), None)
    thread = threading.Thread(target=agent._watch_loop, daemon=True)
    return agent, thread


def a_follower(cluster: EtcdCluster) -> Member:
    """The first endpoint if it follows (the one the clients' channels are connected to), else another."""
    leader = cluster.leader()
    return next(m for m in cluster.members if m != leader)


@pytest.mark.timeout(120)
def test_leader_then_follower_killed_during_writes_and_watches_lose_and_duplicate_nothing(
        cluster: EtcdCluster, server: ServerProcess) -> None:
    writer = Writer(Cloud(EtcdStore(cluster.endpoints)))
    watcher = Watcher(EtcdStore(list(reversed(cluster.endpoints))), "/kvnet/networks/")
    agent, agent_thread = agent_watching(server.url)
    for thread in (watcher, agent_thread, writer):
        thread.start()
    gaps = {}
    try:
        for victim_of in ("leader", "follower"):
            count = len(writer.created)
            wait_until(lambda c=count: len(writer.created) >= c + 30, 20, "30 writes before the kill")
            victim = cluster.leader() if victim_of == "leader" else a_follower(cluster)
            killed_at = time.monotonic()
            cluster.kill(victim, signal.SIGKILL)
            count = len(writer.created)
            wait_until(lambda c=count: len(writer.created) >= c + 30, 20, f"30 writes after killing the {victim_of}")
            gaps[victim_of] = writer.longest_gap(killed_at)
            cluster.restart(victim)
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    created = {f"/kvnet/networks/{rid}" for rid in writer.created}
    wait_until(lambda: {k for _, k in watcher.seen} >= created, 15, "the watcher saw every write")
    wait_until(lambda: set(agent.model.networks) == set(writer.created) if agent.model else False, 15,
               "the agent's model has every network")
    agent.stop()
    watcher.stop.set()
    print(f"\nlongest write gap after SIGKILL: leader {gaps['leader'] * 1000:.0f} ms, "
          f"follower {gaps['follower'] * 1000:.0f} ms; {len(created)} writes")
    assert writer.errors == []
    assert len(watcher.seen) == len(set(watcher.seen)), "a change was delivered twice"
    assert {k for _, k in watcher.seen} == created, "a change was lost (or invented)"
    assert sorted(watcher.seen) == watcher.seen, "events out of revision order"
    assert max(gaps.values()) < 5.0


@pytest.mark.timeout(60)
def test_compaction_past_an_idle_agent_relists_and_misses_nothing(
        cluster: EtcdCluster, server: ServerProcess) -> None:
    with Client(server.url) as admin:
        first = [admin.create("networks", {"name": f"old{i}"})["id"] for i in range(4)]
        agent, agent_thread = agent_watching(server.url)
        agent._load_snapshot()  # in sync at revision R, then idle
        idle_at = agent.model.revision  # type: ignore[union-attr]
        later = [admin.create("networks", {"name": f"new{i}"})["id"] for i in range(4)]
        for rid in first[:3]:
            admin.delete("networks", rid)
        operator = EtcdStore(cluster.endpoints)  # compaction by another process (an operator, auto-compaction)
        operator.compact(operator.revision())
        operator.close()
        with pytest.raises(Compacted):
            admin.watch(idle_at + 1, timeout=0)
        agent_thread.start()
        expected = {first[3], *later}
        wait_until(lambda: set(agent.model.networks) == expected, 15,  # type: ignore[union-attr]
                   "the agent re-listed and converged")
        agent.stop()
        assert agent.model is not None and agent.model.revision > idle_at


@pytest.mark.timeout(60)
def test_ambiguous_commit_after_a_lost_answer_lands_once(cluster: EtcdCluster) -> None:
    """Kill the member a client is connected to while it writes allocation-guarded creates in 4 threads:
    every create returns once, none raises, and no IP is handed out twice."""
    cloud = Cloud(EtcdStore(cluster.endpoints))
    network = cloud.create("networks", {"name": "net"})
    cloud.create("subnets", {"network_id": network["id"], "cidr": "10.9.0.0/24"})
    ports: list[dict] = []
    errors: list[str] = []

    def create(n: int) -> None:
        for _ in range(n):
            try:
                ports.append(cloud.create("ports", {"network_id": network["id"]}))
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=create, args=(25,)) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(ports) >= 20, 20, "20 ports before the kill")
    cluster.kill(cluster.members[0], signal.SIGKILL)  # the channel's first (connected) endpoint
    for t in threads:
        t.join(timeout=60)
    stored = cloud.list("ports")
    ips = [f["ip_address"] for p in stored for f in p["fixed_ips"]]
    assert errors == []
    assert len(ports) == len(stored) == 100
    assert len(set(ips)) == len(ips) and len({p["mac_address"] for p in stored}) == len(stored)
