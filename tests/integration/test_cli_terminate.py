"""A lab or bench command stopped with SIGTERM (a plain `kill`, a CI timeout) removes what it built,
as Ctrl-C does: its namespaces do not outlive it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from kvnet.sys import netns

pytestmark = pytest.mark.root


def _bench_namespaces() -> set[str]:
    return set(netns.list_with_prefix("kvbd"))


def test_a_terminated_dataplane_bench_leaves_no_namespace() -> None:
    before = _bench_namespaces()
    proc = subprocess.Popen([sys.executable, "-m", "kvnet", "bench", "dataplane", "--paths", "bridge",
                             "--sizes", "64", "--repeats", "50", "--loads", "0", "--seconds", "2", "--out", "/tmp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _bench_namespaces() - before:  # the path is built: there is something to leave behind
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _bench_namespaces() - before == set()
