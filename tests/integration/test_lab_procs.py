"""The supervisor starts, watches and stops process groups; `down` cleans up even after a crash."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kvnet.lab import names as n
from kvnet.lab.control import ControlPlaneError, wait_for_socket
from kvnet.lab.lab import Lab
from kvnet.lab.probe import UnderlayCapture, host_exec
from kvnet.lab.procs import ProcRecord, proc_info, stop_group
from kvnet.lab.testing import running_lab, temp_root, unique_lab_name
from kvnet.sys import netns
from kvnet.sys.cmd import run

pytestmark = pytest.mark.root

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]
# A leader with a child in its group, printing the child's pid: like an agent that forked a helper.
FORKER = [sys.executable, "-c",
          "import subprocess, time; c = subprocess.Popen(['sleep', '300']); print('child', c.pid, flush=True);"
          " time.sleep(300)"]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(hosts=1) as lab:
        yield lab


def until(predicate, deadline_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def child_pid(log: str) -> int:
    assert until(lambda: "child" in Path(log).read_text())
    return int(Path(log).read_text().split()[1])


def test_start_in_host_namespace_and_stop(lab: Lab) -> None:
    rec = lab.procs.start("agent-h1", SLEEPER, netns=n.host_ns(lab.name, "h1"))
    assert lab.procs.alive("agent-h1")
    pids = run(["ip", "netns", "pids", n.host_ns(lab.name, "h1")]).stdout.split()
    assert str(rec.pid) in pids
    assert json.loads(lab.state.path.read_text())["procs"]["agent-h1"]["pid"] == rec.pid
    assert lab.procs.stop("agent-h1") is True
    assert proc_info(rec.pid) is None
    assert not lab.procs.alive("agent-h1") and "agent-h1" not in lab.procs.records()
    assert Path(rec.log).exists()


def test_stop_kills_the_whole_group_after_the_leader_died(lab: Lab) -> None:
    rec = lab.procs.start("forker", FORKER)
    child = child_pid(rec.log)
    os.kill(rec.pid, signal.SIGKILL)
    assert until(lambda: proc_info(rec.pid) is None)
    assert lab.procs.alive("forker")  # the child still runs in the group
    assert lab.procs.stop("forker") is True
    assert proc_info(child) is None


def test_status_shows_the_log_tail_of_a_dead_process(lab: Lab) -> None:
    lab.procs.start("crasher", [sys.executable, "-c", "print('agent: cannot reach server'); raise SystemExit(3)"])
    assert until(lambda: not lab.procs.alive("crasher"))
    proc = lab.status()["processes"]["crasher"]
    assert proc["alive"] is False
    assert "agent: cannot reach server" in proc["log_tail"]
    assert lab.procs.stop("crasher") is False


def test_a_reused_pid_is_never_signalled() -> None:
    """A record whose pid now belongs to another command (or started at another time) stops nothing."""
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        info = proc_info(other.pid)
        assert info is not None
        rec = ProcRecord("agent-h9", other.pid, ["python", "-m", "kvnet", "agent"], ["x"], None,
                         info.start_ticks, "/dev/null")
        assert stop_group(rec, timeout=1) is False
        good_cmd_wrong_time = replace(rec, argv=["sleep", "300"], start_ticks=info.start_ticks - 1)
        assert stop_group(good_cmd_wrong_time, timeout=1) is False
        assert other.poll() is None
        assert stop_group(replace(rec, argv=["sleep", "300"]), timeout=1) is True
        assert other.wait(timeout=5) == -signal.SIGTERM
    finally:
        other.kill()
        other.wait()


def test_wait_for_socket(lab: Lab) -> None:
    sock = lab.dir / "standin.sock"
    server = [sys.executable, "-c", textwrap.dedent("""
        import socket, sys, time
        s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); time.sleep(300)
        """), str(sock)]
    lab.procs.start("server", server)
    try:
        wait_for_socket(lab, "server", sock, deadline_s=10)
    finally:
        lab.procs.stop("server")
    lab.procs.start("badserver", [sys.executable, "-c", "print('bind failed'); raise SystemExit(1)"])
    with pytest.raises(ControlPlaneError, match="bind failed"):
        wait_for_socket(lab, "badserver", lab.dir / "never.sock", deadline_s=10)
    lab.procs.stop("badserver")


HOLDER = """
import json, sys
from pathlib import Path
from kvnet.lab.lab import Lab
from kvnet.lab.spec import default_spec
name, root, sleeper, forker = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
lab = Lab(name, root)
lab.up(default_spec(name, 2))
lab.procs.start("server", sleeper)
lab.procs.start("agent-h1", forker, netns=f"{name}-h1")
print("ready", flush=True)
import time; time.sleep(300)
"""


def test_down_after_the_state_holder_was_killed() -> None:
    """The CLI that built the lab dies (kill -9), an agent leader dies too; `down` still removes all."""
    name = unique_lab_name()
    with temp_root() as root:
        argv = [sys.executable, "-c", HOLDER, name, str(root), json.dumps(SLEEPER), json.dumps(FORKER)]
        holder = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert select.select([holder.stdout], [], [], 30)[0], "holder did not get ready"
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
            holder.kill()
            holder.wait()
            procs = json.loads((root / name / "state.json").read_text())["procs"]
            server, agent = procs["server"]["pid"], procs["agent-h1"]["pid"]
            child = child_pid(procs["agent-h1"]["log"])
            os.kill(agent, signal.SIGKILL)
            assert proc_info(server) is not None and proc_info(child) is not None
            stray = subprocess.Popen(["ip", "netns", "exec", f"{name}-h2", "sleep", "300"],
                                     start_new_session=True)  # not recorded anywhere
            assert until(lambda: str(stray.pid) in run(["ip", "netns", "pids", f"{name}-h2"]).stdout.split())

            report = Lab(name, root).down()

            assert set(report.processes) == {"server", "agent-h1"}
            assert stray.pid in report.strays
            assert stray.wait(timeout=5) is not None
            assert proc_info(server) is None and proc_info(child) is None
            assert netns.list_with_prefix(f"{name}-") == []
            assert not (root / name).exists()
        finally:
            holder.kill()
            netns.delete_with_prefix(f"{name}-")


def test_two_labs_side_by_side() -> None:
    with running_lab(hosts=2) as a, running_lab(hosts=2) as b:
        b_proc = b.procs.start("agent-h1", SLEEPER, netns=n.host_ns(b.name, "h1"))
        a.procs.start("agent-h1", SLEEPER, netns=n.host_ns(a.name, "h1"))
        # Same tunnel IPs in both labs, separate underlays: A's traffic never shows up on B's switch.
        with UnderlayCapture(b, "icmp") as b_cap, UnderlayCapture(a, "icmp") as a_cap:
            host_exec(a, "h1", ["ping", "-c1", "-W1", "192.0.2.2"])
            assert a_cap.wait_for(2, deadline_s=5)
        assert b_cap.count == 0

        a.down()
        assert netns.list_with_prefix(n.prefix(a.name)) == []
        st = b.status()
        assert st["up"] is True and st["processes"]["agent-h1"]["alive"] is True
        assert b.procs.record("agent-h1") == b_proc
        assert host_exec(b, "h2", ["ping", "-c1", "-W1", "192.0.2.1"], check=False).returncode == 0
