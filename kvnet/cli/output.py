"""How the CLI prints: rich tables for people, JSON for scripts, `error: field: message` for failures."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kvnet.errors import KvnetError

# Tables piped to a file or grep should not be cut at 80 columns.
PIPE_WIDTH = 200


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else PIPE_WIDTH, highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def cell(value: Any) -> Text:
    """A value as plain text (never rich markup): lists joined, dicts and None readable."""
    if value is None or value == "" or value == [] or value == {}:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return Text(", ".join(str(v) for v in value))
    if isinstance(value, dict | list):
        return Text(json.dumps(value, sort_keys=True))
    return Text(str(value))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    table = Table(*headers, title=title, header_style="bold")
    for row in rows:
        table.add_row(*(value if isinstance(value, Text) else cell(value) for value in row))
    console().print(table)


def print_record(record: dict[str, Any]) -> None:
    """One resource as a field / value table."""
    print_table(["field", "value"], [(Text(key), cell(record[key])) for key in sorted(record)])


def say(message: str, style: str = "green") -> None:
    console().print(Text(message, style=style))


def error(message: str) -> None:
    console(stderr=True).print(Text(f"error: {message}", style="red"))


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """A KvnetError (including an unreachable server) ends the command with exit 1 and no traceback."""
    try:
        yield
    except KvnetError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
