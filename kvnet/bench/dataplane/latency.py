"""Round-trip latency from per-packet `ping -D` lines; percentiles computed here, not by ping."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from kvnet.sys.cmd import run

_RTT = re.compile(r"^\[(?P<ts>\d+\.\d+)\] .*icmp_seq=(?P<seq>\d+) .*time=(?P<ms>[\d.]+) ms")


def parse_ping(output: str) -> list[float]:
    """RTTs in ms, one per reply line of `ping -D` (duplicates and summary lines ignored)."""
    seen: set[int] = set()
    rtts = []
    for line in output.splitlines():
        m = _RTT.match(line.strip())
        if m and "DUP!" not in line and int(m["seq"]) not in seen:
            seen.add(int(m["seq"]))
            rtts.append(float(m["ms"]))
    return rtts


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    xs = sorted(samples)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ping_rtts(netns: str, dst: str, *, count: int = 200, interval: float = 0.005,
              deadline: float = 10) -> list[float]:
    """Per-packet RTTs (ms) of `count` pings from `netns` to `dst`; lost pings simply have none."""
    argv = ["ping", "-D", "-n", "-i", f"{interval}", "-c", str(count), "-W", "1", "-w", str(int(deadline)),
            dst]
    proc = run(argv, netns=netns, check=False, timeout=deadline + 5)
    return parse_ping(proc.stdout)


def rtt_summary(rtts: Sequence[float]) -> dict[str, float | None]:
    if not rtts:
        return {"rtt_p50_ms": None, "rtt_p99_ms": None}
    return {"rtt_p50_ms": percentile(rtts, 50), "rtt_p99_ms": percentile(rtts, 99)}
