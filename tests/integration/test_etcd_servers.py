"""Stateless API servers on one etcd cluster: two `kvnet server` processes, the CLI pointed at both,
one server killed (SIGKILL) in the middle of a burst of port creates."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kvnet.bench.api import ServerProcess
from kvnet.client import Client
from kvnet.etcd.cluster import EtcdCluster, running_cluster

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")
CREATES = 16
PARALLEL = 4


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[EtcdCluster, list[ServerProcess]]]:
    with running_cluster(tmp_path / "etcd", 3) as cluster:
        procs = [ServerProcess(cluster.url) for _ in range(2)]
        try:
            for proc in procs:
                proc.wait_ready()
            yield cluster, procs
        finally:
            for proc in procs:
                if proc.proc.poll() is None:
                    os.killpg(proc.proc.pid, signal.SIGKILL)
                    proc.proc.wait(timeout=10)


def cli_create(urls: str, network: str, name: str) -> tuple[str, int, str]:
    done = subprocess.run([sys.executable, "-m", "kvnet", "--server", urls, "port", "create", "--network", network,
                           "--name", name], capture_output=True, text=True, timeout=60)
    return name, done.returncode, done.stderr


@pytest.mark.timeout(120)
def test_killing_one_of_two_servers_during_a_cli_burst_creates_each_port_once(
        servers: tuple[EtcdCluster, list[ServerProcess]]) -> None:
    _, (first, second) = servers
    urls = f"{first.url},{second.url}"
    with Client(urls) as admin:
        network = admin.create("networks", {"name": "burst"})
        admin.create("subnets", {"network_id": network["id"], "cidr": "10.30.0.0/24"})
        with ThreadPoolExecutor(PARALLEL) as pool:
            futures = [pool.submit(cli_create, urls, "burst", f"p{i}") for i in range(CREATES)]
            while sum(f.done() for f in futures) < CREATES // 4:
                time.sleep(0.02)
            os.killpg(first.proc.pid, signal.SIGKILL)
            results = [f.result() for f in futures]
        ports = admin.list("ports")
    names = Counter(p["name"] for p in ports)
    ips = [f["ip_address"] for p in ports for f in p["fixed_ips"]]
    failed = [(name, err) for name, rc, err in results if rc != 0]
    succeeded = {name for name, rc, _ in results if rc == 0}
    assert all(count == 1 for count in names.values()), f"a port was created twice: {names}"
    assert succeeded <= set(names), "a create reported success but its port is missing"
    for name, err in failed:  # a failure must say what went wrong
        assert "error" in err.lower() and ("cannot reach" in err or "unavailable" in err.lower()), (name, err)
    assert len(ips) == len(set(ips)) and len({p["mac_address"] for p in ports}) == len(ports)
    print(f"\n{len(succeeded)} of {CREATES} CLI creates succeeded, {len(failed)} failed clearly; "
          f"{len(ports)} ports stored, all distinct IPs and MACs")
    assert len(succeeded) >= CREATES - PARALLEL
