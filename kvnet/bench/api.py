"""`kvnet bench api`: port creations per second through the real HTTP API.

A `kvnet server` subprocess on loopback TCP with a fresh store; sequential creates from one client,
then N-way concurrent creates; each repeated, medians reported. The same creates are also timed
in-process (Cloud.create without HTTP) in the same run, which splits the cost between the HTTP
stack and the transaction itself.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kvnet.bench.results import envelope, summarize
from kvnet.client import Client, ServerUnavailable
from kvnet.server.cloud import Cloud
from kvnet.store.sqlite import SQLiteStore

Progress = Callable[[str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A `kvnet server` on 127.0.0.1:<free port>, stopped by PID."""

    def __init__(self, store_url: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kvnet", "server", "--store", store_url, "--listen", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        with Client(self.url, timeout=1) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
                try:
                    client.health()
                    return
                except ServerUnavailable:
                    time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _fresh_network(client: Client, tag: str) -> str:
    network = client.create("networks", {"name": tag})
    client.create("subnets", {"network_id": network["id"], "cidr": "10.0.0.0/16"})
    return network["id"]


def _sequential(url: str, network_id: str, count: int) -> float:
    with Client(url) as client:
        start = time.perf_counter()
        for _ in range(count):
            client.create("ports", {"network_id": network_id})
        return count / (time.perf_counter() - start)


def _concurrent(url: str, network_id: str, count: int, workers: int) -> float:
    clients = [Client(url) for _ in range(workers)]
    per_worker = count // workers

    def work(client: Client) -> None:
        for _ in range(per_worker):
            client.create("ports", {"network_id": network_id})

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, clients))
    elapsed = time.perf_counter() - start
    for client in clients:
        client.close()
    return per_worker * workers / elapsed


def _in_process(db: Path, count: int) -> float:
    store = SQLiteStore(db)
    cloud = Cloud(store)
    network = cloud.create("networks", {})
    cloud.create("subnets", {"network_id": network["id"], "cidr": "10.0.0.0/16"})
    start = time.perf_counter()
    for _ in range(count):
        cloud.create("ports", {"network_id": network["id"]})
    rate = count / (time.perf_counter() - start)
    store.close()
    return rate


def run_api_bench(ports: int = 300, workers: int = 8, repeats: int = 3,
                  progress: Progress = lambda _: None) -> dict[str, Any]:
    seq: list[float] = []
    conc: list[float] = []
    inproc: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kvnet-bench-api-") as tmp:
        server = ServerProcess(f"sqlite:///{tmp}/api.db")
        try:
            server.wait_ready()
            with Client(server.url) as admin:
                for i in range(repeats):
                    progress(f"repeat {i + 1}/{repeats}: {ports} sequential creates")
                    seq.append(_sequential(server.url, _fresh_network(admin, f"seq{i}"), ports))
                    progress(f"repeat {i + 1}/{repeats}: {ports} creates, {workers}-way concurrent")
                    conc.append(_concurrent(server.url, _fresh_network(admin, f"conc{i}"), ports, workers))
        finally:
            server.stop()
        for i in range(repeats):
            progress(f"repeat {i + 1}/{repeats}: {ports} in-process creates (no HTTP)")
            inproc.append(_in_process(Path(tmp) / f"inproc{i}.db", ports))
    seq_s, conc_s, in_s = summarize(seq), summarize(conc), summarize(inproc)
    return envelope("api", {
        "store": "sqlite",
        "ports_per_run": ports,
        "workers": workers,
        "sequential": {"ports_per_s": seq_s["median"], "spread": seq_s},
        "concurrent": {"ports_per_s": conc_s["median"], "spread": conc_s},
        "in_process": {"ports_per_s": in_s["median"], "spread": in_s},
        "http_share_of_sequential_cost": 1 - (seq_s["median"] or 0) / (in_s["median"] or 1),
    })


def markdown(data: dict[str, Any]) -> str:
    r = data["results"]
    return (f"# API benchmark ({r['store']})\n\n{data['date']}, kvnet {data['kvnet_version']}, "
            f"{data['machine']['nproc']} cores\n\n"
            "| mode | ports/s (median) | min | max |\n|---|---|---|---|\n"
            + "".join(f"| {mode} | {r[mode]['ports_per_s']:.0f} | {r[mode]['spread']['min']:.0f} | "
                      f"{r[mode]['spread']['max']:.0f} |\n" for mode in ("sequential", "concurrent", "in_process"))
            + f"\nHTTP + client share of the sequential cost: {r['http_share_of_sequential_cost']:.0%}\n")
