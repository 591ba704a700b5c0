"""`kvnet bench …`: every benchmark, one result format (bench/results/<name>.json + .md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from kvnet.bench.results import DEFAULT_DIR, write_result
from kvnet.cli.common import terminate_like_interrupt

app = typer.Typer(no_args_is_help=True, help="Benchmarks: API, control plane, dataplane pps.")
app.callback()(terminate_like_interrupt)
err = Console(stderr=True)


def _progress(message: str) -> None:
    err.print(f"[dim]… {message}[/dim]")


def _finish(name: str, data: dict, markdown: str, as_json: bool, out: Path) -> None:
    path = write_result(name, data, out, markdown=markdown)
    if as_json:
        print(json.dumps(data["results"], indent=2))
    else:
        Console().print(markdown)
    err.print(f"[green]written {path} and {path.with_suffix('.md')}[/green]")


@app.command()
def api(ports: int = typer.Option(300, help="port creations per run (>= 200)"),
        workers: int = typer.Option(8, help="concurrent clients"),
        repeats: int = typer.Option(3), as_json: bool = typer.Option(False, "--json"),
        out: Path = typer.Option(DEFAULT_DIR, help="results directory"),
        store: str = typer.Option("sqlite", help="etcd: a 3-member etcd cluster next to SQLite, in the same run")
        ) -> None:
    """Port creations per second through the real HTTP API (sequential and concurrent)."""
    from kvnet.bench import api as bench_api

    if store == "etcd":
        from kvnet.bench import etcd as bench_etcd

        data = bench_etcd.run_api(ports, workers, repeats, _progress)
        _finish("api_etcd", data, bench_etcd.markdown(data), as_json, out)
        return
    data = bench_api.run_api_bench(ports, workers, repeats, _progress)
    _finish("api", data, bench_api.markdown(data), as_json, out)


@app.command()
def control(ports: int = typer.Option(50, help="ports for the convergence measurement"),
            entries: int = typer.Option(10_000, help="FDB + neighbour entries for the programming rate"),
            repeats: int = typer.Option(3), as_json: bool = typer.Option(False, "--json"),
            out: Path = typer.Option(DEFAULT_DIR, help="results directory"),
            store: str = typer.Option("sqlite", help="etcd: convergence, watch latency and a leader kill on a "
                                      "3-member etcd cluster next to SQLite"),
            watch_samples: int = typer.Option(200, help="creates for the watch latency (with --store etcd)")) -> None:
    """Convergence (port create -> first ping) in a lab, and the kernel programming rate."""
    from kvnet.bench import control as bench_control

    if store == "etcd":
        from kvnet.bench import etcd as bench_etcd

        data = bench_etcd.run_control(ports, watch_samples, _progress)
        _finish("control_etcd", data, bench_etcd.markdown(data), as_json, out)
        return
    data = bench_control.run_control_bench(ports, entries, repeats, _progress)
    _finish("control", data, bench_control.markdown(data), as_json, out)


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@app.command()
def dataplane(paths: str = typer.Option(None, help="comma-separated paths (default: all); see --list"),
              sizes: str = typer.Option("64,1518", help="frame sizes in bytes"),
              seconds: float = typer.Option(2.0, help="measurement window per sample"),
              repeats: int = typer.Option(3), loads: str = typer.Option("0,60,90", help="host CPU load %"),
              list_paths: bool = typer.Option(False, "--list", help="list the known paths and exit"),
              as_json: bool = typer.Option(False, "--json"),
              out: Path = typer.Option(DEFAULT_DIR, help="results directory")) -> None:
    """Packets/s, loss and RTT per path (veth baseline, hand-built references, kvnet's paths) -> table + plots."""
    from kvnet.bench.dataplane import base
    from kvnet.bench.dataplane.run import DEFAULT_PATHS, run_and_save
    from kvnet.bench.report import report

    if list_paths:
        for name in base.names():
            path = base.get(name)
            print(f"{name:<14} {path.description}" + (f" (reference: {path.reference})" if path.reference else ""))
        return
    data = run_and_save(_csv(paths) if paths else DEFAULT_PATHS, [int(s) for s in _csv(sizes)], seconds, repeats,
                        [float(x) for x in _csv(loads)], progress=_progress, dir=str(out))
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        report(out)


@app.command("pool")
def pool_command(runs: list[Path] = typer.Argument(..., help="result directories of `kvnet bench dataplane` runs"),
                 group: list[str] = typer.Option(None, help="PATH[+PATH...]:REFERENCE (repeat; default: every "
                                                 "path with a reference, alone)"),
                 size: int = typer.Option(64), load: float = typer.Option(0.0),
                 as_json: bool = typer.Option(False, "--json"),
                 out: Path = typer.Option(DEFAULT_DIR, help="results directory for pooled.json/.md")) -> None:
    """Pool per-repeat ratios of several dataplane runs into one median per pair (or group of paths)."""
    from kvnet.bench.dataplane import pool
    from kvnet.bench.results import envelope

    loaded = []
    for run in runs:
        path = run / "dataplane.json" if run.is_dir() else run
        try:
            loaded.append((str(run), json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"{path}: {exc}", param_hint="RUNS") from exc
    try:
        groups = [pool.parse_group(g) for g in group] if group else pool.default_groups([r for _, r in loaded])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--group") from exc
    data = envelope("pooled", {"runs": [label for label, _ in loaded], "size": size, "load": load,
                               "groups": pool.pool(loaded, groups, size, load)})
    _finish("pooled", data, pool.markdown(data), as_json, out)


@app.command("report")
def report_command(out: Path = typer.Option(DEFAULT_DIR, help="results directory"),
                   plots: bool = typer.Option(True, help="also write the PNG plots")) -> None:
    """Render the latest dataplane results: terminal table, PNG plots and markdown under the results dir."""
    from kvnet.bench.report import report

    report(out, plots=plots)


@app.command()
def security(samples: int = typer.Option(20, help="samples per measurement and dataplane"),
             dataplane: str = typer.Option("linux,ovs", help="comma-separated: linux, ovs"),
             as_json: bool = typer.Option(False, "--json"),
             out: Path = typer.Option(DEFAULT_DIR, help="results directory")) -> None:
    """Security-group changes -> effective (rule added; remote-group member added), p50/p99."""
    from kvnet.bench import security as bench_security

    data = bench_security.run_bench(samples, tuple(d for d in dataplane.split(",") if d), _progress)
    _finish("security", data, bench_security.markdown(data), as_json, out)


@app.command()
def filters(ports: int = typer.Option(1000, help="filtered ports on the host"), repeats: int = typer.Option(3),
            dataplane: str = typer.Option("linux,ovs", help="comma-separated: linux, ovs"),
            as_json: bool = typer.Option(False, "--json"),
            out: Path = typer.Option(DEFAULT_DIR, help="results directory")) -> None:
    """Programming a host's port filters (1,000 ports in groups): from nothing, no-op, rule, member."""
    from kvnet.bench import filter_programming, ovs_programming
    from kvnet.bench.results import envelope

    planes = [d for d in dataplane.split(",") if d]
    for plane in set(planes) - {"linux", "ovs"}:
        raise typer.BadParameter(f"unknown dataplane {plane!r} (linux, ovs)", param_hint="--dataplane")
    for plane in planes:
        _progress(f"{plane}: {ports} filtered ports, {repeats} repeats")
        if plane == "linux":
            data = envelope("filter_programming", filter_programming.run_filter_programming_bench(ports, repeats))
            _finish("filter_programming", data, filter_programming.markdown(data), as_json, out)
        else:
            data = envelope("ovs_programming_groups",
                            ovs_programming.run_ovs_programming_bench(ports, repeats, groups=True))
            _finish("ovs_programming_groups", data, ovs_programming.markdown(data), as_json, out)


@app.command()
def fip(samples: int = typer.Option(30, help="floating IPs per router mode"),
        as_json: bool = typer.Option(False, "--json"),
        out: Path = typer.Option(DEFAULT_DIR, help="results directory")) -> None:
    """Floating IP convergence (create -> reachable from the lab's internet), centralized and distributed."""
    from kvnet.bench import fip as bench_fip

    data = bench_fip.run_fip_bench(samples, _progress)
    _finish("fip", data, bench_fip.markdown(data), as_json, out)
