"""The dataplane benchmark's arithmetic, parsing and rendering; no root needed."""

import pytest

from kvnet.bench import report
from kvnet.bench.dataplane import base, counters, paths
from kvnet.bench.dataplane.aggregate import Sample, aggregate
from kvnet.bench.dataplane.generators import trafgen_argv, trafgen_config, udp_payload_len
from kvnet.bench.dataplane.latency import parse_ping, percentile, rtt_summary
from kvnet.bench.dataplane.load import loop_argv
from kvnet.bench.dataplane.measure import loss_ratio
from kvnet.bench.results import envelope

EP = base.Endpoints("kvtBx-s", "eth0", "02:00:00:00:00:01", "10.0.0.1", "02:00:00:00:00:02", "10.0.0.2",
                    "kvtBx-r", "eth0", "kvtBx-r")


def test_percentile_linear_interpolation():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 100) == 4.0
    assert percentile(xs, 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5  # order does not matter
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


PING = """PING 10.90.0.2 (10.90.0.2) 56(84) bytes of data.
[1795610417.799361] 64 bytes from 10.90.0.2: icmp_seq=1 ttl=64 time=0.020 ms
[1795610417.804363] 64 bytes from 10.90.0.2: icmp_seq=2 ttl=64 time=0.024 ms
[1795610417.804400] 64 bytes from 10.90.0.2: icmp_seq=2 ttl=64 time=0.500 ms (DUP!)
[1795610417.809376] 64 bytes from 10.90.0.2: icmp_seq=4 ttl=64 time=1.5 ms

--- 10.90.0.2 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 10ms
rtt min/avg/max/mdev = 0.020/0.024/0.028/0.003 ms
"""


def test_parse_ping_per_packet_rtts_without_duplicates_or_summary():
    assert parse_ping(PING) == [0.020, 0.024, 1.5]
    assert rtt_summary(parse_ping(PING))["rtt_p50_ms"] == 0.024
    assert rtt_summary([]) == {"rtt_p50_ms": None, "rtt_p99_ms": None}


def test_frame_sizes_on_the_wire():
    assert udp_payload_len(64) == 18     # 64 - FCS 4 - 14 - 20 - 8
    assert udp_payload_len(1518) == 1472
    for bad in (63, 1519):
        with pytest.raises(ValueError):
            udp_payload_len(bad)


def test_trafgen_config_and_argv():
    cfg = trafgen_config(EP, 64)
    assert "eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01" in cfg
    assert "ipv4(sa=10.0.0.1, da=10.0.0.2" in cfg and "udp(sp=1024, dp=9)" in cfg
    assert "fill(0x00, 18)" in cfg
    argv = trafgen_argv("eth0", "/tmp/x.cfg", rate_pps=1000)
    assert argv[:5] == ["trafgen", "--dev", "eth0", "--conf", "/tmp/x.cfg"]
    assert "--no-sock-mem" in argv and "--notouch-irq" in argv and argv[-2:] == ["--rate", "1000pps"]
    assert "--rate" not in trafgen_argv("eth0", "c")


def test_loss_ratio():
    assert loss_ratio(1000, 500) == 0.5
    assert loss_ratio(0, 0) == 0.0
    assert loss_ratio(100, 120) == 0.0  # never negative
    assert loss_ratio(100, 0) == 1.0


def test_sink_ruleset_and_counter_parsing():
    assert "udp dport 9 counter drop" in counters.sink_ruleset(9)
    with pytest.raises(ValueError):
        counters.sink_ruleset(9, "reject")
    doc = {"nftables": [{"metainfo": {}}, {"rule": {"chain": "sink", "expr": [
        {"match": {}}, {"counter": {"packets": 7, "bytes": 322}}, {"drop": None}]}}]}
    assert counters.parse_sink(doc) == counters.SinkCounter(7, 322)
    with pytest.raises(LookupError):
        counters.parse_sink({"nftables": []})


def _samples():
    out = []
    for path, pps in (("veth", [400, 380, 420]), ("routed", [200, 100, 210]), ("nat", [150, 160, 140])):
        for rep, p in enumerate(pps):
            out.append(Sample(path, 64, 0, p * 1000, p * 512_000, 0.0, rep=rep))
    out.append(Sample("veth", 64, 60, 300_000, 0, 0.1))
    out.append(Sample("nat", 64, 60, 30_000, 0, 0.5))
    return out


def test_aggregate_medians_and_ratios():
    entries = aggregate(_samples(), {("veth", 0): [0.01, 0.02, 0.03]}, {"nat": "routed", "routed": None})
    by = {(e["path"], e["load"]): e for e in entries}
    assert by[("veth", 0)]["pps"] == 400_000 and by[("veth", 0)]["ratio_to_veth"] == 1.0
    assert by[("routed", 0)]["pps"] == 200_000 and by[("routed", 0)]["ratio_to_veth"] == 0.5
    assert by[("routed", 0)]["ratio_to_reference"] is None
    assert by[("nat", 0)]["ratio_to_reference"] == pytest.approx(150 / 200)
    assert by[("nat", 0)]["reference"] == "routed"
    assert by[("nat", 60)]["ratio_to_veth"] == pytest.approx(30 / 300)  # same load, not load 0
    assert by[("nat", 60)]["ratio_to_reference"] is None  # routed not measured at 60%
    assert by[("veth", 0)]["rtt_p50_ms"] == 0.02 and by[("nat", 0)]["rtt_p50_ms"] is None
    assert by[("routed", 0)]["pps_stats"]["n"] == 3


def test_ratios_are_paired_within_a_repeat():
    # the machine was twice as slow in repeat 1: both paths halve, their ratio does not move
    samples = [Sample("veth", 64, 0, 400, 0, 0, rep=0), Sample("nat", 64, 0, 100, 0, 0, rep=0),
               Sample("veth", 64, 0, 200, 0, 0, rep=1), Sample("nat", 64, 0, 50, 0, 0, rep=1),
               Sample("veth", 64, 0, 300, 0, 0, rep=2), Sample("nat", 64, 0, 150, 0, 0, rep=2)]
    by = {e["path"]: e for e in aggregate(samples)}
    assert by["nat"]["ratio_to_veth"] == 0.25
    assert by["nat"]["pps"] / by["veth"]["pps"] == pytest.approx(1 / 3)  # the ratio of medians is not


def test_ratio_to_veth_is_none_without_baseline():
    entries = aggregate([Sample("bridge", 64, 0, 10, 0, 0)])
    assert entries[0]["ratio_to_veth"] is None


def test_registry_has_reference_paths_and_rejects_unknown():
    assert set(paths.DEFAULT_PATHS) <= set(base.names())
    for name in paths.DEFAULT_PATHS:
        assert isinstance(base.get(name), base.Path)
    assert base.get("nat").reference == "routed"
    dropper = paths.WithDropper(base.get("veth"))
    assert isinstance(dropper, base.Path) and dropper.reference == "veth"
    with pytest.raises(KeyError):
        base.get("nope")
    assert base.unique_prefix("kvtB").startswith("kvtB") and base.unique_prefix("kvtB") != \
        base.unique_prefix("kvtB")


def test_cpu_load_argv_is_a_duty_cycle_loop():
    argv = loop_argv(30, cpu=1)
    assert argv[:3] == ["taskset", "-c", "1"] and argv[-2] == "0.300"


def test_report_renders_table_markdown_and_plots(tmp_path):
    entries = aggregate(_samples(), {}, {"nat": "routed"})
    data = report.save_dataplane(entries, {"generator": "trafgen", "seconds": 1, "repeats": 3}, tmp_path)
    assert data["results"]["entries"] == entries
    md = (tmp_path / "dataplane.md").read_text()
    assert "| nat | 64 | 0 | 150.0 |" in md and "0.75 (routed)" in md
    assert (tmp_path / report.PPS_PNG).stat().st_size > 1000
    assert (tmp_path / report.LOAD_PNG).stat().st_size > 1000
    again = report.report(tmp_path, plots=False)
    assert again["results"]["entries"][0]["path"] == entries[0]["path"]
    assert report.rich_table(envelope("dataplane", {"entries": entries})).row_count == len(entries)
