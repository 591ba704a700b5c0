"""The lab's control plane: API server (root namespace, unix socket in the lab dir) and one agent per
host (inside the host's namespace, reaching the server through that socket file).

The `kvnet server` / `kvnet agent` commands and the API calls are the lead's: functions marked TODO
are the hooks to fill in. Everything else (argv, process supervision, readiness) works now.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvnet.lab import names as n
from kvnet.lab.procs import POLL_S, ProcRecord

if TYPE_CHECKING:
    from kvnet.lab.lab import Lab


class ControlPlaneError(RuntimeError):
    """The server or an agent did not come up; the message carries the tail of its log."""

SERVER = "server"


def agent_proc_name(host: str) -> str:
    return f"agent-{host}"


def socket_path(labdir: Path) -> Path:
    return labdir / "kvnet.sock"


def server_url(lab: Lab) -> str:
    """The API's address for clients and agents: `unix:<labdir>/kvnet.sock` (on etcd: both servers',
    comma-separated; the client moves to the second when the first is gone)."""
    return servers_arg(lab.dir)


def servers_arg(labdir: Path) -> str:
    from kvnet.lab.etcd import server_sockets
    from kvnet.lab.state import StateFile

    store = StateFile(labdir).read().get("store") or "sqlite"
    return ",".join(f"unix:{path}" for path in server_sockets(labdir, store))


def store_url(labdir: Path) -> str:
    return f"sqlite:///{labdir / 'kvnet.db'}"


def server_argv(labdir: Path, store: str | None = None, sock: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "kvnet", "server", "--store", store or store_url(labdir),
            "--uds", str(sock or socket_path(labdir))]


def agent_argv(labdir: Path, host: str) -> list[str]:
    from kvnet.lab.sriov import config_path

    return [sys.executable, "-m", "kvnet", "agent", "--host", host, "--server", servers_arg(labdir),
            "--sriov-emulation", str(config_path(labdir, host))]


def control_plane_available() -> bool:
    """True once `python -m kvnet` exists (the lead's CLI entry point)."""
    return importlib.util.find_spec("kvnet.__main__") is not None


def wait_for_socket(lab: Lab, proc: str, path: Path, deadline_s: float = 15.0) -> None:
    """Poll until `path` accepts a connection; fail early, with the log tail, if `proc` died."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if path.exists():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(path))
                    return
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
        if not lab.procs.alive(proc):
            raise ControlPlaneError(f"{proc} exited before {path} was ready:\n{lab.procs.log_tail(proc)}")
        time.sleep(POLL_S)
    raise ControlPlaneError(f"{path} not ready after {deadline_s}s:\n{lab.procs.log_tail(proc)}")


def start_server(lab: Lab) -> ProcRecord:
    from kvnet.lab.etcd import lab_store, server_proc_names, server_sockets, start_cluster

    store = lab_store(lab)
    if store != "etcd":
        rec = lab.procs.start(SERVER, server_argv(lab.dir))
        wait_for_socket(lab, SERVER, socket_path(lab.dir))
        return rec
    cluster = start_cluster(lab)  # 3 members on loopback, then two API servers on it
    recs = []
    for name, sock in zip(server_proc_names(store), server_sockets(lab.dir, store), strict=True):
        recs.append(lab.procs.start(name, server_argv(lab.dir, cluster.url, sock)))
        wait_for_socket(lab, name, sock)
    return recs[0]


def start_agents(lab: Lab) -> list[ProcRecord]:
    return [start_agent(lab, h) for h in lab.hosts()]


def start_agent(lab: Lab, host: str) -> ProcRecord:
    """The host's agent, inside its namespace (on an OVS host: pointed at that host's OVS instance)."""
    from kvnet.lab.ovs import agent_env

    return lab.procs.start(agent_proc_name(host), agent_argv(lab.dir, host), netns=n.host_ns(lab.name, host),
                           env=agent_env(lab, host), keep_mounts=True)  # router namespaces outlive an agent restart


def register_hosts(lab: Lab) -> None:
    """The lab's hosts become Host resources (tunnel IP, roles, physnets), as an operator would add them."""
    from kvnet.client import Client

    with Client(server_url(lab)) as client:
        for host in lab.host_resources():
            client.create("hosts", host)


def start_control_plane(lab: Lab) -> None:
    start_server(lab)
    register_hosts(lab)
    start_agents(lab)


def create_port_for_vm(lab: Lab, vm: str, host: str, network: str,
                       ip: str | None) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A port on `network` (id or name) bound to `host`, named after the VM: what Nova asks Neutron for.

    Returns (port, subnet, network_mtu) in the shapes `kvnet.lab.vm.create_vm` takes."""
    from kvnet.client import Client

    with Client(server_url(lab)) as client:
        net = client.find("networks", network)
        body: dict[str, Any] = {"name": vm, "network_id": net["id"], "binding_host": host,
                                "project_id": net["project_id"]}
        if ip:
            body["fixed_ips"] = [{"ip_address": ip}]
        port = client.create("ports", body)
        if not port["fixed_ips"]:
            from kvnet.lab.lab import LabError

            client.delete("ports", port["id"])
            raise LabError(f"network {network} has no subnet to give VM {vm} an address")
        subnet = client.get("subnets", port["fixed_ips"][0]["subnet_id"])
    return port, subnet, int(net["mtu"])


def delete_port_for_vm(lab: Lab, port_id: str) -> None:
    from kvnet.client import Client
    from kvnet.errors import NotFound

    with Client(server_url(lab)) as client, contextlib.suppress(NotFound):
        client.delete("ports", port_id)
