"""Render the latest benchmark results: a rich table, PNG plots (matplotlib, Agg) and markdown.

`save_dataplane(entries, params)` writes bench/results/dataplane.{json,md,png...} in the common
envelope; `report()` re-renders whatever is latest on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kvnet.bench.results import DEFAULT_DIR, envelope, read_result, write_result

NAME = "dataplane"
PPS_PNG = "dataplane_pps.png"
LOAD_PNG = "dataplane_load.png"


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _order(entries: Sequence[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for e in entries:
        if e["path"] not in seen:
            seen.append(e["path"])
    return seen


def sorted_entries(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {p: i for i, p in enumerate(_order(entries))}
    return sorted(entries, key=lambda e: (e["load"], e["size"], order[e["path"]]))


COLUMNS = ("path", "size B", "load %", "kpps", "Mbit/s", "loss", "vs veth", "vs ref", "RTT p50 ms",
           "RTT p99 ms")

SHORT_COLUMNS = ("path", "B", "load%", "kpps", "Mb/s", "loss", "/veth", "/ref", "p50 ms", "p99 ms")


def rows(entries: Sequence[dict[str, Any]], ref_names: bool = True) -> list[list[str]]:
    out = []
    for e in sorted_entries(entries):
        ref = "-" if e.get("ratio_to_reference") is None else f"{e['ratio_to_reference']:.2f}"
        if ref_names and e.get("ratio_to_reference") is not None:
            ref += f" ({e['reference']})"
        out.append([e["path"], str(e["size"]), f"{e['load']:g}", _fmt(e["pps"] / 1e3, ".1f"),
                    _fmt(e["bps"] / 1e6, ".0f"), f"{e['loss']:.2%}", _fmt(e.get("ratio_to_veth"), ".2f"),
                    ref, _fmt(e.get("rtt_p50_ms"), ".3f"), _fmt(e.get("rtt_p99_ms"), ".3f")])
    return out


def rich_table(data: dict[str, Any]) -> Table:
    entries = data["results"]["entries"]
    refs = sorted({f"{e['path']} -> {e['reference']}" for e in entries if e.get("reference")})
    table = Table(title=f"kvnet dataplane ({data.get('date')}, {data['machine']['nproc']} CPUs)",
                  caption=("references: " + ", ".join(refs)) if refs else None)
    for c in SHORT_COLUMNS:
        table.add_column(c, justify="left" if c == "path" else "right", no_wrap=True)
    for r in rows(entries, ref_names=False):
        table.add_row(*r)
    return table


def markdown(data: dict[str, Any], pngs: Sequence[str] = (PPS_PNG, LOAD_PNG)) -> str:
    m, params = data["machine"], data["results"].get("params", {})
    lines = [
        "# kvnet dataplane benchmark",
        "",
        f"- date: {data['date']}, kvnet {data['kvnet_version']}",
        f"- machine: {m['nproc']} x {m['cpu_model']}, kernel {m['kernel']}, python {m['python']}",
        f"- generator: {params.get('generator')} (1 sender CPU), {params.get('seconds')} s windows, "
        f"median of {params.get('repeats')} repeats; pps counted at the receiver (nft sink counter), "
        "loss = 1 - received/sent (sender tx counter)",
        "- reference paths built by hand in namespaces; ratios are to `veth` (the machine's limit) and "
        "to the path's reference, same size and load, same run",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(data["results"]["entries"])]
    lines += [""] + [f"![{p}]({p})" for p in pngs] + [""]
    return "\n".join(lines)


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pps_by_path(entries: Sequence[dict[str, Any]], out: Path, load: float = 0) -> Path:
    """Grouped bars: pps per path, one bar per frame size, labelled with the ratio to veth."""
    plt = _plt()
    chosen = [e for e in entries if e["load"] == load]
    paths, sizes = _order(chosen), sorted({e["size"] for e in chosen})
    width = 0.8 / max(1, len(sizes))
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=110)
    for i, size in enumerate(sizes):
        by_path = {e["path"]: e for e in chosen if e["size"] == size}
        xs = [j + (i - (len(sizes) - 1) / 2) * width for j in range(len(paths))]
        ys = [by_path[p]["pps"] / 1e3 if p in by_path else 0 for p in paths]
        bars = ax.bar(xs, ys, width, label=f"{size} B")
        labels = [f"{by_path[p]['ratio_to_veth']:.2f}" if p in by_path and by_path[p].get("ratio_to_veth")
                  else "" for p in paths]
        ax.bar_label(bars, labels=labels, fontsize=8, padding=2)
    ax.set_xticks(range(len(paths)), paths, rotation=30, ha="right")
    ax.set_ylabel("kpps at the receiver (median)")
    ax.set_title(f"pps by path and frame size (host CPU load {load:g}%; labels: ratio to veth)")
    ax.legend(title="frame")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_pps_vs_load(entries: Sequence[dict[str, Any]], out: Path) -> Path | None:
    """Lines: pps vs background CPU load on the receiving host, per path (per size if several)."""
    loads = sorted({e["load"] for e in entries})
    if len(loads) < 2:
        return None
    plt = _plt()
    sizes = sorted({e["size"] for e in entries if e["load"] > 0})
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    colors = plt.get_cmap("tab20").colors  # enough distinct colours for every path
    for size in sizes:
        for i, path in enumerate(_order(entries)):
            pts = sorted((e["load"], e["pps"] / 1e3) for e in entries
                         if e["path"] == path and e["size"] == size)
            if len(pts) > 1:
                label = path if len(sizes) == 1 else f"{path} {size} B"
                style = "--" if path.startswith("kvnet-") else "-"  # kvnet's paths dashed, references solid
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=label,
                        color=colors[i % len(colors)])
    ax.set_xlabel("background CPU load on the receiving host, % duty cycle on every CPU")
    ax.set_ylabel("kpps at the receiver (median)")
    ax.set_title("pps vs host CPU load" + (f" ({sizes[0]} B frames)" if len(sizes) == 1 else ""))
    ax.set_xticks(loads)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_plots(entries: Sequence[dict[str, Any]], dir: str | Path = DEFAULT_DIR) -> list[Path]:
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    out = [plot_pps_by_path(entries, d / PPS_PNG)]
    load_png = plot_pps_vs_load(entries, d / LOAD_PNG)
    return out + ([load_png] if load_png else [])


def save_dataplane(entries: list[dict[str, Any]], params: dict[str, Any],
                   dir: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    """Wrap entries in the common envelope and write dataplane.json, dataplane.md and the PNGs."""
    data = envelope(NAME, {"params": params, "entries": entries})
    pngs = write_plots(entries, dir)
    write_result(NAME, data, dir, markdown=markdown(data, [p.name for p in pngs]))
    return data


def report(dir: str | Path = DEFAULT_DIR, console: Console | None = None, plots: bool = True) -> dict[str, Any]:
    """Print the latest dataplane results as a table; re-render PNGs and dataplane.md from the JSON."""
    data = read_result(NAME, dir)
    (console or Console()).print(rich_table(data))
    if plots:
        pngs = write_plots(data["results"]["entries"], dir)
        (Path(dir) / f"{NAME}.md").write_text(markdown(data, [p.name for p in pngs]))
    return data
