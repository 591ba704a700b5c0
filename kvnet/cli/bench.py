"""`kvnet bench …`: every benchmark, one result format (bench/results/<name>.json + .md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from kvnet.bench.results import DEFAULT_DIR, write_result

app = typer.Typer(no_args_is_help=True, help="Benchmarks: API, control plane, dataplane pps.")
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
        out: Path = typer.Option(DEFAULT_DIR, help="results directory")) -> None:
    """Port creations per second through the real HTTP API (sequential and concurrent)."""
    from kvnet.bench import api as bench_api

    data = bench_api.run_api_bench(ports, workers, repeats, _progress)
    _finish("api", data, bench_api.markdown(data), as_json, out)


@app.command()
def control(ports: int = typer.Option(50, help="ports for the convergence measurement"),
            entries: int = typer.Option(10_000, help="FDB + neighbour entries for the programming rate"),
            repeats: int = typer.Option(3), as_json: bool = typer.Option(False, "--json"),
            out: Path = typer.Option(DEFAULT_DIR, help="results directory")) -> None:
    """Convergence (port create -> first ping) in a lab, and the kernel programming rate."""
    from kvnet.bench import control as bench_control

    data = bench_control.run_control_bench(ports, entries, repeats, _progress)
    _finish("control", data, bench_control.markdown(data), as_json, out)
