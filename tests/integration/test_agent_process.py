"""A real agent process killed with SIGKILL takes its long-lived children with it (its `ip monitor`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from linux_fixtures import PREFIX, wait_for

from kvnet.lab.procs import proc_info
from kvnet.sys import netns

pytestmark = pytest.mark.root

AGENT = """
import sys
from kvnet.agent.loop import Agent
from kvnet.client import Client
Agent("h1", Client(sys.argv[1]), None, netns=sys.argv[2]).run()
"""


@pytest.fixture
def host_ns() -> Iterator[str]:
    name = f"{PREFIX}{uuid.uuid4().hex[:6]}-agent"
    netns.add(name)
    try:
        yield name
    finally:
        netns.delete(name)


def monitor_child(pid: int) -> int | None:
    """The `ip monitor` whose parent is `pid`, if there is one."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        info = proc_info(int(entry))
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid and info and "monitor" in info.cmdline:
            return int(entry)
    return None


def test_sigkill_of_the_agent_kills_its_ip_monitor(host_ns: str, tmp_path: Path) -> None:
    # No server at that socket: the agent keeps retrying it, and its device monitor runs meanwhile.
    agent = subprocess.Popen([sys.executable, "-c", AGENT, f"unix:{tmp_path / 'none.sock'}", host_ns],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    monitor: list[int] = []
    try:
        assert wait_for(lambda: monitor_child(agent.pid) is not None, timeout_s=10), "the agent started no ip monitor"
        monitor.append(monitor_child(agent.pid) or 0)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)
        assert wait_for(lambda: proc_info(monitor[0]) is None, timeout_s=5), "ip monitor outlived its agent"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=10)
        for pid in monitor:  # never leave one behind, even when the assertion failed
            if proc_info(pid) is not None:
                os.kill(pid, signal.SIGKILL)
