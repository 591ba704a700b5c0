"""The host agent: watch the cloud -> compile -> reconcile -> report port status.

Three threads, one job each:
- the watcher keeps the in-memory `CloudModel` current (snapshot, then long-poll watch from the next
  revision; re-snapshot after compaction; back off and retry while the server is away);
- the device monitor (`ip monitor link`) wakes the loop when the hypervisor creates a port's tap;
- the main loop reconciles whenever either says something changed, and fully every `resync_interval`.

No kernel write happens before the first snapshot is loaded (an agent that starts while the server is
down keeps the dataplane exactly as it is), nor while the model has no record of this host (an empty
plan would delete everything), and a reconcile never flushes: it diffs. A pass that left failures or
unknowns is retried with exponential backoff (capped); a new event always gets an immediate pass.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvnet import __version__
from kvnet.agent.compile import UnknownHost, compile_host
from kvnet.agent.model import CloudModel
from kvnet.agent.status import PortState, port_states, reconcile_summary
from kvnet.agent.vf import VFAssignment, VFReconciler, compile_vfs
from kvnet.client import Client, ServerUnavailable
from kvnet.dataplane import Driver, Failure, ReconcileResult
from kvnet.errors import Compacted, KvnetError
from kvnet.plan import HostPlan
from kvnet.sriov.report import REPORT_KEY as SRIOV_REPORT_KEY
from kvnet.sriov.source import SriovSource, sriov_source
from kvnet.sys.cmd import in_netns
from kvnet.sys.process import die_with_parent

log = logging.getLogger("kvnet.agent")
WATCH_TIMEOUT = 25.0
HEARTBEAT_INTERVAL = float(os.environ.get("KVNET_HEARTBEAT_INTERVAL", "10"))  # the host is down after 3 missed
MAX_BACKOFF = 5.0
DEBOUNCE = 0.005
RETRY_FIRST = 0.2  # a pass that left failures or unknowns: retried after this, doubling per failing pass
RETRY_MAX = 30.0


@dataclass
class AgentStats:
    reconciles: int = 0
    changes: int = 0
    errors: int = 0
    last: ReconcileResult | None = None
    last_summary: dict[str, Any] | None = None  # the last pass, as the heartbeat carries it
    last_full_resync: float | None = None  # wall time of the last pass that read everything it owns
    first_seen: dict[str, float] = field(default_factory=dict)
    reported: dict[str, PortState] = field(default_factory=dict)


class Agent:
    def __init__(self, host: str, client: Client, driver: Driver | None, *, resync_interval: float = 30.0,
                 netns: str | None = None, driver_for: Callable[[str], Driver] | None = None,
                 sriov: SriovSource | None = None) -> None:
        self.host = host
        self.client = client
        self.driver = driver  # None: made by `driver_for(host's dataplane)` once the snapshot is loaded
        self.driver_for = driver_for
        self.vfs = VFReconciler(sriov) if sriov is not None else None
        self.sriov_report: dict[str, Any] | None = None  # the SR-IOV NICs, sent with every heartbeat
        self.resync_interval = resync_interval
        self.netns = netns
        self.stats = AgentStats()
        self.model: CloudModel | None = None
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._monitor: subprocess.Popen[str] | None = None
        self.retry_backoff = 0.0  # 0: the last pass was clean
        self._unknown_host_logged = False

    # -- lifecycle ------------------------------------------------------------------------------
    def run(self) -> None:
        threads = [threading.Thread(target=self._watch_loop, name="watch", daemon=True),
                   threading.Thread(target=self._device_monitor, name="devices", daemon=True)]
        for thread in threads:
            thread.start()
        try:
            self._main_loop()
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._monitor and self._monitor.poll() is None:
            self._monitor.terminate()

    # -- main loop ------------------------------------------------------------------------------
    def _main_loop(self) -> None:
        next_pass = time.monotonic()  # when a pass is due without an event: the resync, or a retry
        next_heartbeat = time.monotonic()
        while not self._stop.is_set():
            self._dirty.wait(timeout=max(0.0, min(next_pass, next_heartbeat) - time.monotonic()))
            if self._stop.is_set():
                return
            now = time.monotonic()
            if now >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = now + HEARTBEAT_INTERVAL
            if not self._dirty.is_set() and now < next_pass:
                continue
            time.sleep(DEBOUNCE)  # let a burst of events land in one pass
            self._dirty.clear()
            self.reconcile_once()
            next_pass = time.monotonic() + (self.retry_backoff or self.resync_interval)

    def reconcile_once(self) -> ReconcileResult | None:
        """One pass; None when nothing may be touched (not in sync, or the host is unknown). Never raises:
        a driver that does counts as having read nothing (unknown), and is retried."""
        with self._lock:
            if self.model is None:
                return None  # not in sync yet: touch nothing
            try:
                plan = compile_host(self.host, self.model)
            except UnknownHost as exc:
                if not self._unknown_host_logged:
                    log.warning("%s: changing nothing and reporting nothing until it is there", exc)
                    self._unknown_host_logged = True
                return None
            except Exception:  # a model compile cannot read (a bug): touch nothing, live on, retry later
                log.exception("compiling the plan failed; changing nothing")
                self.stats.errors += 1
                self.retry_backoff = min(RETRY_MAX, self.retry_backoff * 2 or RETRY_FIRST)
                return None
            self._unknown_host_logged = False
            self._note_new_ports(plan)
            vf_plan = compile_vfs(self.host, self.model) if self.vfs else ()
            host = self.model.hosts.get(self.host)
            managed_pfs = set(host.physnets.values()) if host else set()
        try:
            if self.driver is None:
                self.driver = self._make_driver(self.model)
            result = self.driver.reconcile(plan)
        except Exception as exc:  # the pass is unknown, the agent lives on and retries
            log.exception("reconcile failed")
            result = ReconcileResult(failures=(Failure("driver", "*", f"{type(exc).__name__}: {exc}",
                                                       tuple(p.port_id for p in plan.ports), observe=True),))
        vf_status, vf_errors = self._reconcile_vfs(vf_plan, managed_pfs)
        self._account(plan, result, failed=bool(result.failures or vf_errors))
        self._report_ports(plan, result, vf_status)
        return result

    def _account(self, plan: HostPlan, result: ReconcileResult, *, failed: bool) -> None:
        self.stats.reconciles += 1
        self.stats.changes += result.total_changes
        self.stats.last = result
        if not result.unknown:
            self.stats.last_full_resync = time.time()
        if failed:
            self.stats.errors += 1
            self.retry_backoff = min(RETRY_MAX, self.retry_backoff * 2 or RETRY_FIRST)
            log.warning("reconcile left %d failure(s), retrying in %.1fs: %s", len(result.failures),
                        self.retry_backoff, "; ".join(result.errors[:3]))
        else:
            self.retry_backoff = 0.0
            if result.total_changes:
                log.info("reconciled in %.1f ms: +%s ~%s -%s", result.duration_ms, result.added, result.changed,
                         result.removed)
        self.stats.last_summary = reconcile_summary(plan, result, self.retry_backoff or None)

    def _reconcile_vfs(self, vf_plan: tuple[VFAssignment, ...], managed_pfs: set[str]) -> tuple[dict[str, str], bool]:
        """VFs of direct ports (see kvnet.agent.vf); a changed SR-IOV inventory is reported at once.
        Returns (port id -> status, whether some VF failed)."""
        if self.vfs is None:
            return {}, False
        now = time.monotonic()
        for a in vf_plan:
            self.stats.first_seen.setdefault(a.port_id, now)
        vf = self.vfs.reconcile(vf_plan, managed_pfs)
        if vf.errors:
            log.warning("VF reconcile left %d error(s), retrying: %s", len(vf.errors), "; ".join(vf.errors[:3]))
        if vf.report != self.sriov_report:
            self.sriov_report = vf.report
            self._heartbeat()
        return vf.status, bool(vf.errors)

    def _make_driver(self, model: CloudModel) -> Driver:
        """The driver for this host's `dataplane`; one that can notice lost state (OVS) may wake us."""
        assert self.driver_for is not None
        host = model.hosts.get(self.host)
        driver = self.driver_for(host.dataplane if host else "linux")
        watch = getattr(driver, "watch", None)
        if watch is not None:
            watch(self._dirty.set)
        log.info("dataplane driver: %s", type(driver).__name__)
        return driver

    def _note_new_ports(self, plan: HostPlan) -> None:
        now = time.monotonic()
        for port in plan.ports:
            self.stats.first_seen.setdefault(port.port_id, now)

    def _report_ports(self, plan: HostPlan, result: ReconcileResult, vf_status: dict[str, str] | None = None) -> None:
        """Each port as `kvnet.agent.status` decides (ACTIVE with how long wiring took; ERROR or DOWN with
        the reason; nothing when unknown); a direct (SR-IOV) port: as its VF is (`kvnet.agent.vf`)."""
        assert self.model is not None
        wanted = port_states(plan, result)
        wanted.update({port_id: PortState(status) for port_id, status in (vf_status or {}).items()})
        for port_id, want in wanted.items():
            stored = self.model.ports.get(port_id)
            if stored is None or self.stats.reported.get(port_id) == want:
                continue
            if stored.status == want.status and stored.status_detail.get("reason", "") == want.reason \
                    and stored.status_detail.get("errors", []) == list(want.messages):
                self.stats.reported[port_id] = want
                continue
            detail = want.detail(self.host)
            if want.status == "ACTIVE":
                first = self.stats.first_seen.get(port_id, time.monotonic())
                detail["wired_ms"] = round((time.monotonic() - first) * 1000, 1)
            try:
                self.client.set_port_status(port_id, want.status, detail, host=self.host)
                self.stats.reported[port_id] = want
            except KvnetError as exc:
                log.warning("could not report port %s %s: %s", port_id, want.status, exc)
        live = {p.port_id for p in plan.ports} | set(wanted)
        for gone in set(self.stats.reported) - live:
            del self.stats.reported[gone]
        for gone in set(self.stats.first_seen) - live:
            self.stats.first_seen.pop(gone, None)

    def _heartbeat(self) -> None:
        last = self.stats.last
        info = {"pid": os.getpid(), "version": __version__, "reconciles": self.stats.reconciles,
                "revision": self.model.revision if self.model else None,
                "last_reconcile_ms": round(last.duration_ms, 1) if last else None,
                "last_reconcile": self.stats.last_summary, "last_full_resync": self.stats.last_full_resync,
                "heartbeat_interval": HEARTBEAT_INTERVAL}
        if self.sriov_report is not None:
            info[SRIOV_REPORT_KEY] = self.sriov_report
        try:
            self.client.heartbeat(self.host, info)
        except KvnetError as exc:
            log.debug("heartbeat failed: %s", exc)

    # -- watcher --------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                if self.model is None:
                    self._load_snapshot()
                self._watch_once()
                backoff = 0.1
            except Compacted:
                log.info("watch history compacted; re-listing")
                self._load_snapshot()
            except (ServerUnavailable, KvnetError) as exc:
                log.warning("server unavailable (%s); keeping the dataplane, retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _load_snapshot(self) -> None:
        model = CloudModel.from_snapshot(self.client.snapshot())
        with self._lock:
            self.model = model
        log.info("loaded the cloud at revision %d", model.revision)
        self._dirty.set()

    def _watch_once(self) -> None:
        assert self.model is not None
        answer = self.client.watch(self.model.revision + 1, timeout=WATCH_TIMEOUT)
        if not answer["events"]:
            return
        with self._lock:
            for event in answer["events"]:
                self.model.apply_event(event)
        self._dirty.set()

    # -- device monitor -------------------------------------------------------------------------
    def _device_monitor(self) -> None:
        """Wake the loop when a port device appears or goes away (the hypervisor plugs VMs)."""
        argv = ["ip", "-n", self.netns, "-o", "monitor", "link"] if self.netns else \
            in_netns(["ip", "-o", "monitor", "link"], None)
        while not self._stop.is_set():
            # Dies with the agent, even on SIGKILL: a monitor left behind would keep the agent "alive".
            self._monitor = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL,
                                             preexec_fn=die_with_parent())
            assert self._monitor.stdout is not None
            for line in self._monitor.stdout:
                if "kvt-" in line:
                    self._dirty.set()
            self._monitor.wait()
            self._stop.wait(1.0)


def make_driver(dataplane: str, netns: str | None) -> Driver:
    """linux: this (or `netns`'s) kernel. ovs: the OVS instance at $OVS_RUNDIR (default
    /var/run/openvswitch), bridges of datapath type $KVNET_OVS_DATAPATH (default system; the lab: netdev).
    Both run the same router pass (router namespaces in this or `netns`'s kernel)."""
    if dataplane == "ovs":
        from kvnet.dataplane.linux.router import RouterDriver
        from kvnet.dataplane.ovs import OvsDriver

        return OvsDriver(Path(os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")), host_netns=netns,
                         datapath_type=os.environ.get("KVNET_OVS_DATAPATH", "system"), routers=RouterDriver(netns))
    from kvnet.dataplane.linux import LinuxDriver

    return LinuxDriver(netns)


def run_agent(host: str, server_url: str | None, resync_interval: float, netns: str | None,
              sriov_emulation: str | None = None) -> None:
    logging.basicConfig(level=os.environ.get("KVNET_LOG", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    agent = Agent(host, Client(server_url, timeout=WATCH_TIMEOUT + 10), None,
                  resync_interval=resync_interval, netns=netns, driver_for=lambda kind: make_driver(kind, netns),
                  sriov=sriov_source(sriov_emulation))
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    log.info("agent for host %s started (server %s)", host, agent.client.url)
    agent.run()
