"""`kvnet bench api`: port creations per second through the real HTTP API.

A `kvnet server` subprocess on loopback TCP with a fresh store; sequential creates from one client,
then N-way concurrent creates; each repeated, medians reported. The same creates are also timed
in-process (Cloud.create without HTTP) in the same run, which splits the cost between the HTTP
stack and the transaction itself.

The load generator is a keep-alive `http.client` connection per worker (as wrk would be): the
server is what is measured, and httpx's own ~1 ms of client CPU per request would otherwise share
the two cores with it.
"""

from __future__ import annotations

import http.client
import json
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


class PortCreator:
    """One keep-alive HTTP connection that creates ports and checks every answer."""

    def __init__(self, port: int, network_id: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.body = json.dumps({"network_id": network_id})

    def create(self, count: int) -> None:
        for _ in range(count):
            self.conn.request("POST", "/v1/ports", self.body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            payload = response.read()
            if response.status != 201:
                raise RuntimeError(f"port create answered {response.status}: {payload[:300]!r}")

    def close(self) -> None:
        self.conn.close()


def _rate(port: int, network_id: str, count: int, workers: int) -> float:
    creators = [PortCreator(port, network_id) for _ in range(workers)]
    per_worker = count // workers
    start = time.perf_counter()
    if workers == 1:
        creators[0].create(per_worker)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda c: c.create(per_worker), creators))
    elapsed = time.perf_counter() - start
    for creator in creators:
        creator.close()
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
                    seq.append(_rate(server.port, _fresh_network(admin, f"seq{i}"), ports, 1))
                    progress(f"repeat {i + 1}/{repeats}: {ports} creates, {workers}-way concurrent")
                    conc.append(_rate(server.port, _fresh_network(admin, f"conc{i}"), ports, workers))
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
        "client": "http.client keep-alive, one connection per worker",
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
