"""A running lab (Mininet's `Mininet`): build it from a LabSpec, report on it, take it down.

`Lab(name)` has no side effects; `up` builds, `down` removes everything of this lab — found from
state.json and the `<lab>-` namespace prefix, so it also works after the CLI that built it crashed —
and nothing of another lab.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvnet.lab import names as n
from kvnet.lab import topology
from kvnet.lab.procs import POLL_S, Supervisor, proc_info
from kvnet.lab.spec import LabSpec
from kvnet.lab.state import StateFile
from kvnet.sys import netns
from kvnet.sys.cmd import run


class LabError(RuntimeError):
    pass


@dataclass
class DownReport:
    processes: list[str] = field(default_factory=list)  # supervised groups that were running
    strays: list[int] = field(default_factory=list)  # pids found inside lab namespaces
    namespaces: list[str] = field(default_factory=list)


class Lab:
    def __init__(self, name: str = n.DEFAULT_LAB, root: Path | None = None) -> None:
        self.name = n.check_lab_name(name)
        self.dir = (root or n.lab_root()) / name
        self.state = StateFile(self.dir)
        self.procs = Supervisor(self.state)

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, dir={str(self.dir)!r})"

    # -- what the lab has -------------------------------------------------------------------------
    def spec(self) -> LabSpec | None:
        data = self.state.read()["spec"]
        return LabSpec.from_dict(data) if data else None

    def hosts(self) -> dict[str, dict[str, Any]]:
        return self.state.read()["hosts"]

    def vms(self) -> dict[str, dict[str, Any]]:
        return self.state.read()["vms"]

    def host_ns(self, host: str) -> str:
        if host not in self.hosts():
            raise LabError(f"lab {self.name} has no host {host!r} (hosts: {', '.join(self.hosts())})")
        return n.host_ns(self.name, host)

    def host_resources(self) -> list[dict[str, Any]]:
        """The hosts as the API's Host resources (name, tunnel_ip, roles, physnets, dataplane)."""
        return [{"name": h, "tunnel_ip": d["tunnel_ip"], "roles": d["roles"], "physnets": d["physnets"],
                 "dataplane": d["dataplane"]} for h, d in self.hosts().items()]

    def expected_namespaces(self) -> list[str]:
        return ([n.ul_ns(self.name), n.ext_ns(self.name)]
                + [d["namespace"] for d in self.hosts().values()]
                + [d["namespace"] for d in self.vms().values()])

    # -- verbs --------------------------------------------------------------------------------------
    def up(self, spec: LabSpec, *, control_plane: bool = False, store: str = "sqlite") -> None:
        """Build the namespaces and links of `spec`; with `control_plane`, start server and agents too.

        On any failure everything built so far is removed again.
        """
        if spec.name != self.name:
            raise LabError(f"spec is for lab {spec.name!r}, not {self.name!r}")
        leftovers = netns.list_with_prefix(n.prefix(self.name))
        if leftovers or self.state.path.exists():
            raise LabError(f"lab {self.name} is already up or left over ({', '.join(leftovers) or 'state'}):"
                           f" run `kvnet lab down --name {self.name}` first")
        with self.state.update() as st:  # recorded before building: `down` must find a half-built lab
            st["spec"] = spec.to_dict()
            st["store"] = store  # sqlite: one API server; etcd: a 3-member cluster and two servers
            st["hosts"] = {h.name: {"namespace": n.host_ns(self.name, h.name), "tunnel_ip": n.tunnel_ip(i),
                                    "roles": list(h.roles), "dataplane": h.dataplane,
                                    "physnets": {n.EXT_PHYSNET: n.HOST_EXT_IF}}
                           for i, h in enumerate(spec.hosts)}
        try:
            topology.build_switches(self.name)
            for h, d in self.hosts().items():
                topology.build_host(self.name, h, d["tunnel_ip"])
                if d["dataplane"] == "ovs":
                    from kvnet.lab.ovs import start_for_host

                    start_for_host(self, h, d["tunnel_ip"])
            if control_plane:
                from kvnet.lab.control import start_control_plane

                start_control_plane(self)
        except BaseException:
            self.down(keep_logs=True)
            raise

    def down(self, *, keep_logs: bool = False, timeout: float = 5.0) -> DownReport:
        report = DownReport()
        for name in reversed(list(self.procs.records())):  # agents before the server
            if self.procs.stop(name, timeout):
                report.processes.append(name)
        names = netns.list_with_prefix(n.prefix(self.name))
        report.strays = stop_namespace_strays(names, timeout)
        for ns in names:
            netns.delete(ns)
        report.namespaces = names
        if self.dir.is_dir():
            if keep_logs:
                for p in self.dir.iterdir():
                    if p.name != "logs":
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
            else:
                shutil.rmtree(self.dir)
        return report

    def status(self) -> dict[str, Any]:
        present = set(netns.list_with_prefix(n.prefix(self.name)))
        expected = self.expected_namespaces() if self.state.path.exists() else []
        procs = {}
        for name, rec in self.procs.records().items():
            alive = self.procs.alive(name)
            procs[name] = {"pid": rec.pid, "netns": rec.netns, "alive": alive, "log": rec.log,
                           **({} if alive else {"log_tail": self.procs.log_tail(name)})}
        return {
            "name": self.name,
            "dir": str(self.dir),
            "up": bool(expected) and all(ns in present for ns in expected),
            "hosts": self.hosts(),
            "namespaces": {ns: ns in present for ns in expected},
            "stray_namespaces": sorted(present - set(expected)),
            "processes": procs,
            "vms": self.vms(),
        }


def namespace_pids(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]


def stop_namespace_strays(namespaces: list[str], timeout: float) -> list[int]:
    """Processes still inside the lab's own namespaces (a capture or daemon whose record was lost).

    Signalled by pid: they can only be the lab's, since nothing else runs in a lab namespace.
    """
    pids = [p for ns in namespaces for p in namespace_pids(ns)]
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(proc_info(p) for p in pids):
            time.sleep(POLL_S)
        if not any(proc_info(p) for p in pids):
            break
    return pids
