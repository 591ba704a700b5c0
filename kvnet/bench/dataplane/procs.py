"""Processes started in their own process group inside a namespace, stopped by killing the group.

A generator's workers can outlive their parent, so the group, not the pid, is what we stop; `stop`
returns only when no process of the group is left (or raises).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from kvnet.sys.cmd import in_netns


class ProcessGroupError(RuntimeError):
    pass


def spawn(argv: Sequence[str], *, netns: str | None, stdout: int | None = subprocess.DEVNULL,
          stderr: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """Start argv (inside `netns`) as the leader of a new session and process group."""
    return subprocess.Popen(in_netns(argv, netns), stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def group_members(pgid: int) -> list[int]:
    """Pids of live (not zombie) processes in group `pgid`, read from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def stop(proc: subprocess.Popen[bytes], *, grace: float = 2.0, deadline: float = 5.0) -> None:
    """SIGINT the group (generators print totals and exit), then SIGKILL; wait until it is empty."""
    pgid = proc.pid  # leader of its own session: pgid == pid
    _signal_group(pgid, signal.SIGINT)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait(timeout=deadline)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    end = time.monotonic() + deadline
    while group_alive(pgid):
        if time.monotonic() > end:
            raise ProcessGroupError(f"process group {pgid} still has {group_members(pgid)}")
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.02)


@contextmanager
def group(argv: Sequence[str], *, netns: str | None, stdout: int | None = subprocess.DEVNULL,
          ) -> Iterator[subprocess.Popen[bytes]]:
    """Run argv in its own process group for the duration of the block; always stopped on exit."""
    proc = spawn(argv, netns=netns, stdout=stdout)
    try:
        yield proc
    finally:
        stop(proc)
