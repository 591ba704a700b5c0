"""Pure arithmetic of the benchmark: medians of repeats, pooled RTT percentiles, ratios."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kvnet.bench.dataplane.latency import rtt_summary
from kvnet.bench.results import summarize

BASELINE = "veth"


@dataclass(frozen=True)
class Sample:
    """One repeat of one (path, size, load) measurement."""

    path: str
    size: int
    load: float
    pps: float
    bps: float
    loss: float
    offered_pps: float = 0.0
    rx_if_pps: float = 0.0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rep: int = 0


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def aggregate(samples: Iterable[Sample], rtts: Mapping[tuple[str, float], Sequence[float]] | None = None,
              references: Mapping[str, str | None] | None = None) -> list[dict[str, Any]]:
    """One entry per (path, size, load): medians of the repeats, RTT percentiles over all pings of
    (path, load), `ratio_to_veth` against veth at the same size and load, and `ratio_to_reference`
    against the path's reference (None when it has none or the reference was not measured); ratios
    are medians of per-repeat ratios (see `paired_ratio`)."""
    samples = list(samples)
    groups: dict[tuple[str, int, float], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.path, s.size, s.load)].append(s)
    entries = []
    for (path, size, load), group in groups.items():
        pps = summarize(s.pps for s in group)
        entry: dict[str, Any] = {
            "path": path, "size": size, "load": load,
            "pps": pps["median"],
            "bps": statistics.median(s.bps for s in group),
            "loss": statistics.median(s.loss for s in group),
            "offered_pps": statistics.median(s.offered_pps for s in group),
            "rx_if_pps": statistics.median(s.rx_if_pps for s in group),
            "rx_dropped": max(s.rx_dropped for s in group),
            "tx_dropped": max(s.tx_dropped for s in group),
            "pps_stats": pps,
            "pps_samples": [s.pps for s in group],
            **rtt_summary((rtts or {}).get((path, load), ())),
        }
        entries.append(entry)
    return add_ratios(entries, references or {}, samples)


def paired_ratio(samples: Sequence[Sample], path: str, base: str, size: int, load: float) -> float | None:
    """Median over repeats of pps(path)/pps(base) within the same repeat: other work on the machine
    changes between repeats, so a ratio taken inside one repeat is steadier than a ratio of medians.
    None when no repeat has both."""
    pps = {(s.path, s.rep): s.pps for s in samples if s.size == size and s.load == load}
    ratios = [r for (p, rep), v in pps.items() if p == path
              if (r := ratio(v, pps.get((base, rep)))) is not None]
    return statistics.median(ratios) if ratios else None


def add_ratios(entries: list[dict[str, Any]], references: Mapping[str, str | None],
               samples: Sequence[Sample] = ()) -> list[dict[str, Any]]:
    """`ratio_to_veth` and `ratio_to_reference`: paired per repeat when samples are given, else the
    ratio of medians."""
    by_key = {(e["path"], e["size"], e["load"]): e["pps"] for e in entries}

    def to(base: str | None, e: dict[str, Any]) -> float | None:
        if base is None or (base, e["size"], e["load"]) not in by_key:
            return None
        if samples:
            return paired_ratio(samples, e["path"], base, e["size"], e["load"])
        return ratio(e["pps"], by_key[(base, e["size"], e["load"])])

    for e in entries:
        e["reference"] = references.get(e["path"])
        e["ratio_to_veth"] = to(BASELINE, e)
        e["ratio_to_reference"] = to(e["reference"], e)
    return entries
