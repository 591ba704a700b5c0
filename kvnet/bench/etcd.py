"""etcd next to SQLite, in the same run: `kvnet bench api --store etcd`, `kvnet bench control --store etcd`.

- API: port creates/s through a real `kvnet server` on a 3-member etcd cluster (loopback) and on
  SQLite, sequential and N-way, and their ratio;
- watch latency: a network created through the API -> the event returned to an agent-style long-poll
  (GET /v1/watch), p50/p99, on both engines;
- leader kill: sequential creates through the API while the etcd leader is SIGKILLed: the longest
  gap between two completed creates, and the time from the kill until a create made after it has
  reached a watching agent.
"""

from __future__ import annotations

import itertools
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kvnet.bench.api import ServerProcess, _fresh_network, _rate
from kvnet.bench.results import envelope, summarize
from kvnet.client import Client
from kvnet.etcd.cluster import EtcdCluster, running_cluster

Progress = Callable[[str], None]


@contextmanager
def api_server(store: str, tmp: Path) -> Iterator[tuple[ServerProcess, EtcdCluster | None]]:
    """A `kvnet server` on a fresh SQLite file or a fresh 3-member etcd cluster."""
    if store == "sqlite":
        server = ServerProcess(f"sqlite:///{tmp}/bench.db")
        try:
            server.wait_ready()
            yield server, None
        finally:
            server.stop()
        return
    with running_cluster(tmp / "etcd", 3) as cluster:
        server = ServerProcess(cluster.url)
        try:
            server.wait_ready()
            yield server, cluster
        finally:
            server.stop()


def _percentiles(ms: list[float]) -> dict[str, float | None]:
    ordered = sorted(ms)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None, "samples": 0}
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2), "samples": len(ordered)}


def api_rates(server: ServerProcess, ports: int, workers: int, repeats: int, progress: Progress) -> dict[str, Any]:
    seq, conc = [], []
    with Client(server.url) as admin:
        for i in range(repeats):
            progress(f"repeat {i + 1}/{repeats}: {ports} sequential, then {workers}-way creates")
            seq.append(_rate(server.port, _fresh_network(admin, f"seq{i}"), ports, 1))
            conc.append(_rate(server.port, _fresh_network(admin, f"conc{i}"), ports, workers))
    return {"sequential": summarize(seq), "concurrent": summarize(conc)}


def watch_latency(server: ServerProcess, samples: int) -> dict[str, Any]:
    """Create -> event at a long-polling watcher, one create at a time."""
    latencies: list[float] = []
    with Client(server.url) as admin, Client(server.url) as agent:
        revision = agent.snapshot()["revision"]
        for i in range(samples):
            got: dict[str, float] = {}

            def poll(start: int = revision + 1, got: dict[str, float] = got) -> None:
                answer = agent.watch(start, timeout=10)
                got["at"] = time.perf_counter()
                got["revision"] = max(e["revision"] for e in answer["events"]) if answer["events"] else start - 1

            poller = threading.Thread(target=poll)
            poller.start()
            time.sleep(0.005)  # let the long-poll reach the server first: we measure delivery, not setup
            sent = time.perf_counter()
            admin.create("networks", {"name": f"w{i}"})
            poller.join(timeout=15)
            if "at" in got:
                latencies.append((got["at"] - sent) * 1000)
            revision = int(got.get("revision", revision))
    return _percentiles(latencies)


def leader_kill(server: ServerProcess, cluster: EtcdCluster, progress: Progress, writes: int = 50) -> dict[str, Any]:
    """Sequential creates through the API; SIGKILL the leader in the middle."""
    done: list[float] = []
    errors: list[str] = []
    stop = threading.Event()
    with Client(server.url) as admin:
        network = _fresh_network(admin, "kill")

        def write() -> None:
            while not stop.is_set():
                try:
                    admin.create("ports", {"network_id": network})
                    done.append(time.monotonic())
                except Exception as exc:
                    errors.append(repr(exc))

        writer = threading.Thread(target=write)
        writer.start()
        while len(done) < writes:
            time.sleep(0.01)
        leader = cluster.leader()
        progress(f"SIGKILL etcd leader {leader.name} during creates")
        killed = time.monotonic()
        cluster.kill(leader, signal.SIGKILL)
        with Client(server.url) as agent:
            revision = agent.snapshot()["revision"]
            seen_at = _first_event_after(agent, revision, killed)
        while len([t for t in done if t > killed]) < writes:
            time.sleep(0.01)
        stop.set()
        writer.join()
    after = [killed] + [t for t in done if t > killed]
    gap = max(b - a for a, b in itertools.pairwise(after))
    cluster.restart(leader)
    return {"longest_write_gap_ms": round(gap * 1000, 1), "errors": errors,
            "kill_to_agent_event_ms": round((seen_at - killed) * 1000, 1) if seen_at else None}


def _first_event_after(agent: Client, revision: int, since: float) -> float | None:
    """When a watcher first gets a change committed after `since` (a create made after the kill)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = agent.watch(revision + 1, timeout=5)
        if answer["events"]:
            revision = max(e["revision"] for e in answer["events"])
            if time.monotonic() > since:
                return time.monotonic()
    return None


def compare_api(ports: int, workers: int, repeats: int, progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kvnet-bench-etcd-") as tmp:
        for store in ("sqlite", "etcd"):
            progress(f"{store}: API port creates")
            with api_server(store, Path(tmp) / store) as (server, _):
                out[store] = api_rates(server, ports, workers, repeats, progress)
    ratio = {mode: round((out["etcd"][mode]["median"] or 0) / (out["sqlite"][mode]["median"] or 1), 3)
             for mode in ("sequential", "concurrent")}
    return {"store": "etcd", "etcd_members": 3, "ports_per_run": ports, "workers": workers, **out,
            "etcd_vs_sqlite": ratio}


def compare_watch_and_faults(samples: int, progress: Progress, writes: int = 50) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kvnet-bench-etcd-") as tmp:
        for store in ("sqlite", "etcd"):
            with api_server(store, Path(tmp) / store) as (server, cluster):
                progress(f"{store}: watch latency over {samples} creates")
                out[f"watch_latency_{store}"] = watch_latency(server, samples)
                if cluster is not None:
                    out["leader_kill"] = leader_kill(server, cluster, progress, writes)
    return out


def markdown_api(r: dict[str, Any]) -> str:
    rows = "".join(f"| {mode} | {r['sqlite'][mode]['median']:.0f} | {r['etcd'][mode]['median']:.0f} | "
                   f"{r['etcd_vs_sqlite'][mode]:.2f} |\n" for mode in ("sequential", "concurrent"))
    return ("| mode | SQLite ports/s | etcd (3 members) ports/s | etcd / SQLite |\n|---|---|---|---|\n" + rows)


def markdown_watch(r: dict[str, Any]) -> str:
    k = r.get("leader_kill", {})
    ws, we = r["watch_latency_sqlite"], r["watch_latency_etcd"]
    return (f"- watch latency (create -> agent long-poll answer): SQLite p50 {ws['p50_ms']} ms / p99 {ws['p99_ms']} ms;"
            f" etcd p50 {we['p50_ms']} ms / p99 {we['p99_ms']} ms\n"
            f"- etcd leader SIGKILL during creates: longest write gap {k.get('longest_write_gap_ms')} ms, "
            f"kill -> next change at an agent {k.get('kill_to_agent_event_ms')} ms, "
            f"errors {len(k.get('errors', []))}\n")


def run_api(ports: int, workers: int, repeats: int, progress: Progress) -> dict[str, Any]:
    return envelope("api_etcd", compare_api(ports, workers, repeats, progress))


def run_control(ports: int, watch_samples: int, progress: Progress) -> dict[str, Any]:
    from kvnet.bench.control import measure_convergence

    results: dict[str, Any] = {"store": "etcd", "etcd_members": 3}
    for store in ("sqlite", "etcd"):
        progress(f"{store}: convergence over {ports} ports in a 3-host lab")
        results[f"convergence_{store}"] = measure_convergence(ports, progress=progress, store=store)
    results.update(compare_watch_and_faults(watch_samples, progress))
    return envelope("control_etcd", results)


def markdown(data: dict[str, Any]) -> str:
    r = data["results"]
    head = (f"# {data['benchmark']}: 3-member etcd next to SQLite\n\n{data['date']}, kvnet {data['kvnet_version']}, "
            f"{data['machine']['nproc']} cores\n\n")
    if "sqlite" in r:
        return head + markdown_api(r)
    cs, ce = r["convergence_sqlite"], r["convergence_etcd"]
    return (head + f"- convergence (port create -> first ping), {ce['ports']} ports: SQLite p50 {cs['p50_ms']:.0f} / "
            f"p99 {cs['p99_ms']:.0f} ms; etcd p50 {ce['p50_ms']:.0f} / p99 {ce['p99_ms']:.0f} ms\n" + markdown_watch(r))
