"""The one result format of every kvnet benchmark: an envelope with machine info, summaries, files.

`envelope(name, results)` wraps a benchmark's own results with where/when/what-version it ran;
`summarize(samples)` is the common statistics block; `write_result(name, data)` writes
`<dir>/<name>.json` (the latest run) and a short `<dir>/<name>.md` for humans.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import kvnet

DEFAULT_DIR = Path("bench/results")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count() or 1,
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(name: str, results: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap `results` with the benchmark name, kvnet version, UTC date and machine info."""
    return {
        "benchmark": name,
        "kvnet_version": kvnet.__version__,
        "date": utc_now(),
        "machine": machine_info(),
        "results": dict(results),
    }


def summarize(samples: Iterable[float]) -> dict[str, float | int | None]:
    """Median, min, max, sample stdev (0 for one sample) and count; all None for no samples."""
    xs = [float(x) for x in samples]
    if not xs:
        return {"median": None, "min": None, "max": None, "stdev": None, "n": 0}
    return {
        "median": statistics.median(xs),
        "min": min(xs),
        "max": max(xs),
        "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "n": len(xs),
    }


def markdown_summary(data: Mapping[str, Any]) -> str:
    """A short header for any envelope; benchmarks with a richer report write their own body."""
    m = data.get("machine", {})
    lines = [
        f"# {data.get('benchmark', 'benchmark')}",
        "",
        f"- date: {data.get('date')}  kvnet {data.get('kvnet_version')}",
        f"- machine: {m.get('nproc')} x {m.get('cpu_model')}, kernel {m.get('kernel')}, "
        f"python {m.get('python')}",
        "",
    ]
    results = data.get("results", {})
    scalars = {k: v for k, v in results.items() if isinstance(v, int | float | str)}
    if scalars:
        lines += ["| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in scalars.items()]
    return "\n".join(lines) + "\n"


def write_result(name: str, data: Mapping[str, Any], dir: str | Path = DEFAULT_DIR,
                 markdown: str | None = None) -> Path:
    """Write `<dir>/<name>.json` and `<dir>/<name>.md` (given `markdown`, or a generic summary)."""
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    (out / f"{name}.md").write_text(markdown if markdown is not None else markdown_summary(data))
    return path


def read_result(name: str, dir: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    return json.loads((Path(dir) / f"{name}.json").read_text())
