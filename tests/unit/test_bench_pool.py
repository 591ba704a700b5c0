"""Pooling per-repeat ratios across dataplane runs (kvnet bench pool)."""

from __future__ import annotations

import pytest

from kvnet.bench.dataplane.pool import Group, default_groups, markdown, parse_group, pool, repeat_ratios


def _run(**pps: list[float]) -> dict:
    refs = {"k": "ref", "k2": "ref"}
    return {"results": {"entries": [{"path": p, "size": 64, "load": 0.0, "pps_samples": s, "reference": refs.get(p)}
                                    for p, s in pps.items()]}}


A = _run(ref=[100.0, 50.0, 200.0], k=[90.0, 50.0, 220.0])
B = _run(ref=[100.0, 100.0], k=[80.0, 100.0], k2=[70.0, 60.0])


def test_ratios_pair_the_same_repeat_not_the_medians() -> None:
    assert repeat_ratios(A, "k", "ref", 64, 0.0) == [0.9, 1.0, 1.1]
    assert repeat_ratios(A, "k2", "ref", 64, 0.0) == []  # not measured in that run
    assert repeat_ratios(A, "k", "ref", 1518, 0.0) == []


def test_pooled_median_over_runs_and_over_a_group_of_paths() -> None:
    rows = pool([("a", A), ("b", B)], [Group(("k",), "ref"), Group(("k", "k2"), "ref")], 64, 0.0)
    alone, both = rows
    assert alone["per_run"] == {"a": {"median": 1.0, "n": 3}, "b": {"median": 0.9, "n": 2}}
    assert alone["pooled"] == 1.0 and alone["n"] == 5  # median of 0.9, 1.0, 1.1, 0.8, 1.0
    assert both["n"] == 7 and both["pooled"] == pytest.approx(0.9)  # + 0.7, 0.6
    table = markdown({"results": {"runs": ["a", "b"], "size": 64, "load": 0.0, "groups": rows}})
    assert "| k / ref | 1.000 (3) | 0.900 (2) | **1.000** (5) |" in table


def test_groups_parse_and_default_to_each_path_against_its_reference() -> None:
    assert parse_group("kvnet-fip+kvnet-fip-mixed:fip-ref") == Group(("kvnet-fip", "kvnet-fip-mixed"), "fip-ref")
    for bad in ("kvnet-fip", ":fip-ref", "kvnet-fip:"):
        with pytest.raises(ValueError, match="PATH"):
            parse_group(bad)
    assert default_groups([A, B]) == [Group(("k",), "ref"), Group(("k2",), "ref")]
