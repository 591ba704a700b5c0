"""Start, inspect, fault and stop a local etcd cluster (Debian's `etcd`), on loopback only.

Used by the store tests, `kvnet lab up --store etcd` and the benchmarks. Every member listens on
127.0.0.1 (clients and peers), keeps its data under the caller's directory and is started in its
own session, so it is stopped (or killed, for fault tests) by its process group and nothing else.
Election timings default to test-friendly values (heartbeat 10 ms, election 50 ms: a new leader in
well under a second); a deployment uses etcd's defaults (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from aetcd import rpc

ETCD = "etcd"
LOOPBACK = "127.0.0.1"
POLL_S = 0.02


class EtcdError(RuntimeError):
    """A member did not start, or the cluster has no leader in time; carries the log tail."""


class Launcher(Protocol):
    """Runs the members' processes: a plain Popen (tests, bench) or the lab's Supervisor."""

    def start(self, name: str, argv: list[str]) -> None: ...
    def kill(self, name: str, sig: int) -> None: ...
    def alive(self, name: str) -> bool: ...
    def stop(self, name: str) -> None: ...
    def log_tail(self, name: str) -> str: ...


class PopenLauncher:
    """Each member in its own session; logs to `<root>/<name>.log`; stopped by process group."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> None:
        with open(self.root / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str, sig: int) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            if sig == signal.SIGKILL:
                proc.wait(timeout=10)

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def stop(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        self.kill(name, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill(name, signal.SIGKILL)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.root / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"http://{LOOPBACK}:{self.peer_port}"


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out on loopback right now (all held open together, so distinct)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind((LOOPBACK, 0))
        return [int(s.getsockname()[1]) for s in socks]


class EtcdCluster:
    """`size` members under `root` (data in `root/<member>.etcd`), loopback only."""

    def __init__(self, root: Path, size: int = 3, *, launcher: Launcher | None = None, prefix: str = "etcd",
                 heartbeat_ms: int = 10, election_ms: int = 50, quota_bytes: int = 2 * 1024**3,
                 auto_compaction_revisions: int = 100_000, ports: list[int] | None = None,
                 token: str | None = None) -> None:
        """`ports` and `token` describe a cluster started before (the lab keeps them in its state)."""
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.launcher = launcher or PopenLauncher(root)
        self.ports = ports or free_ports(2 * size)
        self.members = [Member(f"{prefix}{i + 1}", self.ports[2 * i], self.ports[2 * i + 1],
                               root / f"{prefix}{i + 1}.etcd") for i in range(size)]
        self.token = token or f"kvnet-{secrets.token_hex(4)}"
        self.timings = (heartbeat_ms, election_ms)
        self.quota_bytes = quota_bytes
        self.auto_compaction_revisions = auto_compaction_revisions

    # -- what it is -----------------------------------------------------------------------------
    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        """The store URL for `kvnet server --store`."""
        return "etcd://" + ",".join(self.endpoints)

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def argv(self, m: Member) -> list[str]:
        heartbeat, election = self.timings
        return [ETCD, "--name", m.name, "--data-dir", str(m.data_dir),
                "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", ",".join(f"{x.name}={x.peer_url}" for x in self.members),
                "--initial-cluster-state", "new", "--initial-cluster-token", self.token,
                "--heartbeat-interval", str(heartbeat), "--election-timeout", str(election),
                "--auto-compaction-mode", "revision",
                "--auto-compaction-retention", str(self.auto_compaction_revisions),
                "--quota-backend-bytes", str(self.quota_bytes), "--logger", "zap", "--log-level", "warn"]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> EtcdCluster:
        if shutil.which(ETCD) is None:
            raise EtcdError("etcd is not installed (apt-get install etcd-server etcd-client)")
        deadline = time.monotonic() + timeout
        for m in self.members:
            # One after the other, each once its peer port serves: a member that finds a peer's port
            # bound but not yet serving waits 1 s per peer at bootstrap (etcd 3.4).
            self.launcher.start(m.name, self.argv(m))
            self._wait_peer_port(m, deadline)
        self.wait_leader(max(0.5, deadline - time.monotonic()))
        return self

    def _wait_peer_port(self, m: Member, deadline: float) -> None:
        while True:
            try:
                with urllib.request.urlopen(f"{m.peer_url}/version", timeout=0.2):
                    return
            except OSError:
                pass
            if not self.launcher.alive(m.name):
                raise EtcdError(f"etcd member {m.name} exited:\n{self.launcher.log_tail(m.name)}")
            if time.monotonic() > deadline:
                raise EtcdError(f"etcd member {m.name} does not serve its peer port:\n{self._tails()}")
            time.sleep(POLL_S)

    def restart(self, m: Member, timeout: float = 20.0) -> None:
        """Start a stopped member again on its data dir (it rejoins; the initial-cluster flags are ignored)."""
        self.launcher.start(m.name, self.argv(m))
        self.wait_leader(timeout, members=[m])

    def kill(self, m: Member, sig: int = signal.SIGKILL) -> None:
        self.launcher.kill(m.name, sig)

    def stop(self) -> None:
        for m in self.members:
            self.launcher.stop(m.name)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ----------------------------------------------------------------------------------
    def alive(self) -> list[Member]:
        return [m for m in self.members if self.launcher.alive(m.name)]

    def status(self, m: Member, timeout: float = 1.0) -> tuple[int, int] | None:
        """(this member's id, the leader's id as it sees it), or None if it does not answer."""
        with grpc.insecure_channel(m.endpoint) as channel:
            try:
                resp = rpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=timeout)
            except grpc.RpcError:
                return None
        return resp.header.member_id, resp.leader

    def leader(self, timeout: float = 10.0) -> Member:
        """The member that all live members agree leads (polls until `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = {m.name: self.status(m) for m in self.alive()}
            ids = {s[0]: name for name, s in statuses.items() if s}
            leaders = {s[1] for s in statuses.values() if s}
            if statuses and len(leaders) == 1 and None not in statuses.values():
                leader_id = leaders.pop()
                if leader_id in ids:
                    return self.member(ids[leader_id])
            if time.monotonic() > deadline:
                raise EtcdError(f"no agreed leader after {timeout}s: {statuses}\n{self._tails()}")
            time.sleep(POLL_S)

    def followers(self) -> list[Member]:
        leader = self.leader()
        return [m for m in self.alive() if m != leader]

    def wait_leader(self, timeout: float, members: list[Member] | None = None) -> Member:
        deadline = time.monotonic() + timeout
        for m in members or self.members:
            while (s := self.status(m, timeout=0.1)) is None or s[1] == 0:
                if not self.launcher.alive(m.name):
                    raise EtcdError(f"etcd member {m.name} exited:\n{self.launcher.log_tail(m.name)}")
                if time.monotonic() > deadline:
                    raise EtcdError(f"etcd member {m.name} not ready after {timeout}s:\n{self._tails()}")
                time.sleep(POLL_S)
        return self.leader(max(0.5, deadline - time.monotonic()))

    def _tails(self) -> str:
        return "\n".join(f"--- {m.name}\n{self.launcher.log_tail(m.name)}" for m in self.members)


@contextlib.contextmanager
def running_cluster(root: Path, size: int = 3, **kwargs: object) -> Iterator[EtcdCluster]:
    """A started cluster, stopped (every member's process group) when the block ends, also on failure."""
    cluster = EtcdCluster(root, size, **kwargs)  # type: ignore[arg-type]
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
