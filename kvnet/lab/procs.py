"""Start, watch and stop the lab's long-running processes (API server, agents, captures).

Each process runs in its own session, so its pid is also its process-group id and everything it
forks stays in that group. Its record (pid, pgid, argv, start time, log) goes to state.json before
`start` returns. `stop` signals the group only after checking the group still belongs to the lab:
the leader's start time and command line match the record, or — when the leader already died — the
remaining members are in the recorded session and started after the leader. SIGTERM, wait with a
deadline, then SIGKILL. Nothing is ever found or killed by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from kvnet.lab.state import StateFile
from kvnet.sys.cmd import in_netns

POLL_S = 0.02


@dataclass(frozen=True)
class ProcRecord:
    name: str
    pid: int  # == pgid == sid (start_new_session)
    argv: list[str]  # the command itself
    full_argv: list[str]  # with the `ip netns exec <ns>` prefix, if any (the cmdline until ip execs)
    netns: str | None
    start_ticks: int  # /proc/<pid>/stat field 22: tells a reused pid apart
    log: str

    @property
    def pgid(self) -> int:
        return self.pid


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    state: str
    pgid: int
    sid: int
    start_ticks: int
    cmdline: list[str]


def proc_info(pid: int) -> ProcInfo | None:
    """What /proc says about `pid`, or None when it is gone (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # fields from no. 3 (state) on; comm may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return ProcInfo(pid, fields[0], int(fields[2]), int(fields[3]), int(fields[19]),
                    [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]])


def group_members(rec: ProcRecord) -> list[int]:
    """Live processes of the recorded group that are provably the lab's (see module docstring)."""
    leader = proc_info(rec.pid)
    # The cmdline reads empty for a moment while `ip netns exec` execs the command; the start time
    # still ties the pid to the record then.
    leader_ok = (leader is not None and leader.start_ticks == rec.start_ticks
                 and leader.cmdline in (rec.argv, rec.full_argv, []))
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = proc_info(int(entry))
        if info is None or info.pgid != rec.pgid or info.sid != rec.pid:
            continue
        if info.pid == rec.pid and not leader_ok:
            continue  # the pid was reused by a process that is not ours
        if info.start_ticks >= rec.start_ticks:
            members.append(info.pid)
    return members


class Supervisor:
    """The processes of one lab; records live in the lab's state.json, so any process can stop them."""

    def __init__(self, state: StateFile) -> None:
        self.state = state
        self.log_dir = state.labdir / "logs"
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # ours to reap

    def start(self, name: str, argv: Sequence[str], *, netns: str | None = None,
              env: dict[str, str] | None = None, cwd: Path | None = None, keep_mounts: bool = False) -> ProcRecord:
        """`keep_mounts`: enter `netns` with `nsenter --net` instead of `ip netns exec`, keeping the machine's
        mount namespace -- as an agent on a real host has: the namespaces it creates (bind mounts under
        /run/netns, e.g. router namespaces) are then visible to everyone and outlive it."""
        if self.alive(name):
            raise RuntimeError(f"process {name} is already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        full = ["nsenter", f"--net=/run/netns/{netns}", "--", *argv] if netns and keep_mounts else in_netns(argv, netns)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env, cwd=cwd or self.state.labdir)
        self._children[popen.pid] = popen
        info = proc_info(popen.pid)
        rec = ProcRecord(name, popen.pid, list(argv), full, netns,
                         info.start_ticks if info else 0, str(log_path))
        with self.state.update() as st:
            st["procs"][name] = asdict(rec)
        return rec

    def records(self) -> dict[str, ProcRecord]:
        """Every recorded process, in the order they were started (state.json keeps keys sorted)."""
        procs = [ProcRecord(**d) for d in self.state.read()["procs"].values()]
        return {rec.name: rec for rec in sorted(procs, key=lambda rec: rec.start_ticks)}

    def record(self, name: str) -> ProcRecord | None:
        return self.records().get(name)

    def alive(self, name: str) -> bool:
        self._reap()
        rec = self.record(name)
        return rec is not None and bool(group_members(rec))

    def stop(self, name: str, timeout: float = 5.0) -> bool:
        """Stop the process group `name`; True if something was running. Forgets the record."""
        rec = self.record(name)
        if rec is None:
            return False
        was_running = stop_group(rec, timeout, reap=self._reap)
        with self.state.update() as st:
            st["procs"].pop(name, None)
        return was_running

    def stop_all(self, timeout: float = 5.0) -> list[str]:
        stopped = []
        for name in self.records():
            if self.stop(name, timeout):
                stopped.append(name)
        return stopped

    def log_tail(self, name: str, lines: int = 20) -> str:
        rec = self.record(name)
        path = Path(rec.log) if rec else self.log_dir / f"{name}.log"
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _reap(self) -> None:
        for pid, popen in list(self._children.items()):
            if popen.poll() is not None:
                del self._children[pid]


def stop_group(rec: ProcRecord, timeout: float, reap: Callable[[], None] | None = None) -> bool:
    """SIGTERM the group, wait until it is gone or `timeout` passed, then SIGKILL what is left."""
    members = group_members(rec)
    if not members:
        return False
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(rec.pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if reap is not None:
                reap()
            if not group_members(rec):
                return True
            time.sleep(POLL_S)
    raise RuntimeError(f"process group {rec.pgid} ({rec.name}) survived SIGKILL")
