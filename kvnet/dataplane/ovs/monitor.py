"""RestartMonitor: notice within a fraction of a second that the programmed state is gone or stale.

ovs-vswitchd keeps no flows across a restart (OVSDB keeps its rows), and the agent otherwise only
resyncs every `resync_interval`. A thread polls, every `interval_s`:
- ovs-vswitchd's pidfile (a file read, no vswitchd work): when the pid changes, and otherwise every
  `CANARY_EVERY` polls as a safety net, the canary: kv-int's table-0 drop flow, exact cookie, one
  `ovs-ofctl dump-flows` (Neutron's OVS agent uses the same trick); gone while the last pass installed
  it -> wake the agent. Dumping flows on every poll woke vswitchd's main thread -- the thread that also
  reads the VM ports in the userspace datapath -- five times a second per host;
- the ofports in the IDL (no I/O): a device that appeared after the pass (ofport -1 -> n), or a
  port renumbered by a restarted vswitchd, changes the flows -> wake the agent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from kvnet.dataplane.ovs import openflow
from kvnet.dataplane.ovs.flows import canary

if TYPE_CHECKING:
    from kvnet.dataplane.ovs.driver import OvsDriver

log = logging.getLogger("kvnet.ovs.monitor")
CANARY_EVERY = 25  # with 0.2 s polls: a dump every 5 s even if the pid never changes


class RestartMonitor:
    def __init__(self, driver: OvsDriver, wake: Callable[[], None], interval_s: float) -> None:
        self.driver = driver
        self.wake = wake
        self.interval_s = interval_s
        self.wakes = 0
        self._polls = 0
        self._vswitchd_pid: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ovs-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                reason = self.check()
            except Exception as exc:  # a poll must never kill the thread; the next one retries
                log.debug("monitor check failed: %s", exc)
                continue
            if reason:
                log.info("%s: waking the agent", reason)
                self.wakes += 1
                self.wake()

    def check(self) -> str | None:
        """Why the last pass's result no longer holds, or None."""
        installed = self.driver.installed
        if not installed:
            return None
        self._polls += 1
        pid = self._read_vswitchd_pid()
        if (pid != self._vswitchd_pid or self._polls % CANARY_EVERY == 0) \
                and not openflow.has_flow(self.driver.rundir, canary()):
            return "kv-int lost its flows (ovs-vswitchd restarted?)"
        self._vswitchd_pid = pid
        ofports = self.driver.db.ofports()
        used = self.driver.used_ofports
        if any(ofports.get(name, -1) != ofport for name, ofport in used.items()):
            return "ofports changed"
        return None

    def _read_vswitchd_pid(self) -> str | None:
        try:
            return (self.driver.rundir / "ovs-vswitchd.pid").read_text().strip()
        except OSError:
            return None
