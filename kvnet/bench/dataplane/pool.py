"""Pool the per-repeat ratios of several dataplane runs into one median per pair. Pure.

On this 2-core machine one 20-30-repeat ratio still moves by about +-0.06 from run to run; the same
pair measured in several runs (each its own interleaved A/B, `kvnet bench dataplane`) pools into a
steadier figure. A group pools paths that are the same kernel construct against one reference (e.g.
`kvnet-fip+kvnet-fip-mixed:fip-ref`). Repeat i of a path is paired with repeat i of its reference
in the same run: `pps_samples` are in repeat order.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

Run = Mapping[str, Any]  # a dataplane.json envelope


class Group(NamedTuple):
    paths: tuple[str, ...]
    reference: str

    @property
    def name(self) -> str:
        return f"{'+'.join(self.paths)} / {self.reference}"


def parse_group(text: str) -> Group:
    """`a+b:ref` -> Group(("a", "b"), "ref")."""
    paths, sep, reference = text.partition(":")
    names = tuple(p.strip() for p in paths.split("+") if p.strip())
    if not sep or not reference.strip() or not names:
        raise ValueError(f"group {text!r}: expected PATH[+PATH...]:REFERENCE")
    return Group(names, reference.strip())


def _entry(run: Run, path: str, size: int, load: float) -> Mapping[str, Any] | None:
    return next((e for e in run["results"]["entries"]
                 if e["path"] == path and e["size"] == size and e["load"] == load), None)


def repeat_ratios(run: Run, path: str, reference: str, size: int, load: float) -> list[float]:
    """pps(path)/pps(reference) per repeat of one run; [] when the run lacks either."""
    mine, base = _entry(run, path, size, load), _entry(run, reference, size, load)
    if mine is None or base is None:
        return []
    return [a / b for a, b in zip(mine["pps_samples"], base["pps_samples"], strict=True) if b]


def default_groups(runs: Sequence[Run]) -> list[Group]:
    """Every path with a reference in any of the runs, alone against it."""
    found = {(e["path"], e["reference"]) for run in runs for e in run["results"]["entries"] if e.get("reference")}
    return [Group((path,), reference) for path, reference in sorted(found)]


def pool(runs: Sequence[tuple[str, Run]], groups: Sequence[Group], size: int, load: float) -> list[dict[str, Any]]:
    """Per group: the median of each run's ratios and of all of them together, with their counts."""
    out = []
    for group in groups:
        per_run = {label: [r for path in group.paths for r in repeat_ratios(run, path, group.reference, size, load)]
                   for label, run in runs}
        every = [r for ratios in per_run.values() for r in ratios]
        medians = {label: {"median": statistics.median(r), "n": len(r)} for label, r in per_run.items() if r}
        out.append({"group": group.name, "paths": list(group.paths), "reference": group.reference, "per_run": medians,
                    "pooled": statistics.median(every) if every else None, "n": len(every)})
    return out


def markdown(data: Mapping[str, Any]) -> str:
    res = data["results"]
    labels = res["runs"]
    lines = ["# kvnet dataplane: pooled ratios", "",
             f"- runs: {', '.join(labels)}; {res['size']} B, load {res['load']:g} %",
             "- each cell: the median of per-repeat ratios (path / reference in the same repeat of the same "
             "run) and their count; pooled: the median over all of them", "",
             f"| group | {' | '.join(labels)} | pooled |", f"|---|{'---|' * len(labels)}---|"]
    for row in res["groups"]:
        cells = [f"{row['per_run'][label]['median']:.3f} ({row['per_run'][label]['n']})" if label in row["per_run"]
                 else "-" for label in labels]
        pooled = f"**{row['pooled']:.3f}** ({row['n']})" if row["pooled"] is not None else "-"
        lines.append(f"| {row['group']} | {' | '.join(cells)} | {pooled} |")
    return "\n".join(lines) + "\n"
