"""The lab on etcd (`kvnet lab up --store etcd`): a 3-member etcd cluster on loopback, data under
`<labdir>/etcd/`, its members supervised like every other lab process (logs in `<labdir>/logs/`,
recorded in state.json, stopped by `kvnet lab down`), and two API servers on it.

The API servers run in the root namespace on unix sockets in the lab directory (`kvnet.sock`,
`kvnet2.sock`) and reach etcd on 127.0.0.1; agents in the host namespaces get both sockets and move
to the other when one server dies. Nothing of etcd is reachable from a lab namespace.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvnet.etcd.cluster import EtcdCluster

if TYPE_CHECKING:
    from kvnet.lab.lab import Lab

MEMBERS = 3
API_SERVERS = 2


class SupervisorLauncher:
    """Runs etcd members as lab processes (own session, log file, state.json record)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def start(self, name: str, argv: list[str]) -> None:
        self.lab.procs.start(name, argv)

    def kill(self, name: str, sig: int) -> None:
        rec = self.lab.procs.record(name)
        if rec is not None and self.lab.procs.alive(name):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rec.pgid, sig)

    def alive(self, name: str) -> bool:
        return self.lab.procs.alive(name)

    def stop(self, name: str) -> None:
        self.lab.procs.stop(name)

    def log_tail(self, name: str) -> str:
        return self.lab.procs.log_tail(name)


def lab_store(lab: Lab) -> str:
    return str(lab.state.read().get("store") or "sqlite")


def start_cluster(lab: Lab) -> EtcdCluster:
    cluster = EtcdCluster(lab.dir / "etcd", MEMBERS, launcher=SupervisorLauncher(lab))
    with lab.state.update() as st:  # recorded first: tests and `lab status` find the members by it
        st["etcd"] = {"ports": cluster.ports, "token": cluster.token}
    return cluster.start()


def lab_cluster(lab: Lab) -> EtcdCluster:
    """The running lab's cluster (to find its leader, kill or restart a member)."""
    info: dict[str, Any] = lab.state.read().get("etcd") or {}
    if not info:
        raise RuntimeError(f"lab {lab.name} does not run on etcd")
    return EtcdCluster(lab.dir / "etcd", MEMBERS, launcher=SupervisorLauncher(lab), ports=info["ports"],
                       token=info["token"])


def server_sockets(labdir: Path, store: str) -> list[Path]:
    count = API_SERVERS if store == "etcd" else 1
    return [labdir / ("kvnet.sock" if i == 0 else f"kvnet{i + 1}.sock") for i in range(count)]


def server_proc_names(store: str) -> list[str]:
    return ["server"] + [f"server{i + 1}" for i in range(1, API_SERVERS)] if store == "etcd" else ["server"]
