"""The dataplane harness on real namespaces and generators: it measures, it sees loss, it cleans up."""

import os
import shutil
import subprocess

import pytest

from kvnet.bench.dataplane import base, latency, measure, paths, procs
from kvnet.bench.dataplane.generators import Iperf3, Trafgen
from kvnet.bench.dataplane.load import cpu_load
from kvnet.bench.dataplane.run import run_dataplane_bench
from kvnet.sys import netns

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("trafgen") is None, reason="needs trafgen (netsniff-ng)"),
]


@pytest.fixture
def prefix():
    name = base.unique_prefix("kvtB")
    yield name
    left = netns.list_with_prefix(name)
    netns.delete_with_prefix(name)
    assert left == [], f"namespaces left behind: {left}"


class RecordingTrafgen(Trafgen):
    """Trafgen that remembers the process groups it started."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pgids: list[int] = []

    def start(self, ep, size):
        cm = super().start(ep, size)

        class Wrap:
            def __enter__(inner):
                proc = cm.__enter__()
                self.pgids.append(proc.pid)
                return proc

            def __exit__(inner, *exc):
                return cm.__exit__(*exc)

        return Wrap()


@pytest.mark.parametrize("name", paths.DEFAULT_PATHS)
def test_each_reference_path_delivers_and_is_torn_down(name, prefix):
    with base.get(name).build(prefix) as ep:
        assert netns.list_with_prefix(prefix)
        rtts = latency.ping_rtts(ep.sender_ns, ep.dst_ip, count=20, interval=0.01)
        assert len(rtts) >= 18
        m = measure.measure(ep, Trafgen(), 64, 0.2)
        assert m.pps > 1000
        assert m.received > 0 and m.loss < 0.05
    assert netns.list_with_prefix(prefix) == []


def test_dropper_half_the_packets_is_seen_as_half_loss(prefix):
    with paths.WithDropper(base.get("veth"), every=2).build(prefix) as ep:
        m = measure.measure(ep, Trafgen(), 64, 0.3)
    assert 0.4 <= m.loss <= 0.6
    assert m.offered_pps > 0 and 0.4 <= m.pps / m.offered_pps <= 0.6


def test_rate_limited_generator_sends_about_the_target(prefix):
    with base.get("veth").build(prefix) as ep:
        # A 2 s window: trafgen catches up after a stall on a loaded machine, which a short window overstates.
        m = measure.measure(ep, Trafgen(rate_pps=20_000), 64, 2.0)
    assert 10_000 <= m.pps <= 30_000


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_measurement_leaves_no_namespace_or_generator(prefix, monkeypatch, error):
    gen = RecordingTrafgen()
    real = measure.snapshot
    calls = []

    def failing_snapshot(ep):
        calls.append(1)
        if len(calls) == 2:  # the first snapshot inside the window: the generator is running
            assert procs.group_alive(gen.pgids[0])
            raise error("boom")
        return real(ep)

    monkeypatch.setattr(measure, "snapshot", failing_snapshot)
    with pytest.raises(error), base.get("bridge").build(prefix) as ep:
        measure.measure(ep, gen, 64, 5)
    assert len(gen.pgids) == 1
    assert not procs.group_alive(gen.pgids[0])
    with pytest.raises(ProcessLookupError):
        os.killpg(gen.pgids[0], 0)
    assert netns.list_with_prefix(prefix) == []


def test_stop_kills_workers_that_outlive_their_parent():
    # the leader forks a child that ignores SIGINT and keeps running after the leader exits
    script = "import os, signal, time\nif os.fork() == 0:\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n" \
             "    time.sleep(60)\nelse:\n    time.sleep(60)\n"
    proc = procs.spawn(["python3", "-c", script], netns=None)
    assert os.getpgid(proc.pid) == proc.pid
    procs.stop(proc, grace=0.2)
    assert not procs.group_alive(proc.pid)


def test_cpu_load_runs_in_own_groups_and_stops(prefix):
    ns = f"{prefix}-h"
    netns.add(ns)
    try:
        before = set(_loop_pids())
        with cpu_load(50, ns, procs_n=2):
            running = set(_loop_pids()) - before
            assert len(running) == 2
            assert all(os.getpgid(p) == p for p in running)
        assert not set(_loop_pids()) & running
    finally:
        netns.delete(ns)


def _loop_pids():
    out = subprocess.run(["pgrep", "-f", "duty, period = float"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")
def test_iperf3_generator_is_counted_at_the_receiver(prefix):
    with base.get("veth").build(prefix) as ep:
        m = measure.measure(ep, Iperf3(), 64, 0.3)
    assert m.pps > 1000 and m.received > 0


def test_run_dataplane_bench_small(prefix):
    seen: list[str] = []
    entries = run_dataplane_bench(["routed", "nat"], sizes=(64,), seconds=0.2, repeats=1, cpu_load=(0, 50),
                                  ns_prefix=prefix, ping_count=20, progress=seen.append)
    by = {(e["path"], e["load"]): e for e in entries}
    assert set(by) == {(p, ld) for p in ("veth", "routed", "nat") for ld in (0, 50)}
    assert by[("veth", 0)]["ratio_to_veth"] == 1.0
    assert by[("nat", 0)]["reference"] == "routed"
    assert by[("nat", 0)]["ratio_to_reference"] == pytest.approx(by[("nat", 0)]["pps"] / by[("routed", 0)]["pps"])
    for e in entries:
        assert e["pps"] > 0 and e["rtt_p50_ms"] is not None and e["rtt_p99_ms"] >= e["rtt_p50_ms"]
    assert any("pps" in m for m in seen)


def test_every_other_repeat_walks_the_paths_backwards(prefix):
    seen: list[str] = []
    run_dataplane_bench(["routed", "nat"], sizes=(64,), seconds=0.2, repeats=2, ns_prefix=prefix, ping_count=5,
                        progress=seen.append)
    order = [(m.split(" rep ")[1].split()[0], m.split("% ")[1].split()[0]) for m in seen if " rep " in m]
    assert order == [("1", "veth"), ("1", "routed"), ("1", "nat"), ("2", "nat"), ("2", "routed"), ("2", "veth")]
