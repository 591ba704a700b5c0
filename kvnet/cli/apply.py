"""`kvnet apply -f cloud.yaml`: show the plan, then make the cloud look like the file, in one transaction."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from kvnet.apply.execute import StepFailed, execute, fetch_state
from kvnet.apply.plan import Step, plan
from kvnet.apply.spec import parse_file
from kvnet.cli.common import connected, server_option
from kvnet.cli.output import error, print_table, say
from kvnet.errors import InvalidInput, KvnetError

MARK_STYLE = {"+": "green", "~": "yellow", "-": "red"}
MAX_VALUE = 60


def register(app: typer.Typer) -> None:
    @app.command("apply")
    def apply_(file: str = typer.Option(..., "-f", "--file", help="the cloud file (YAML); - for stdin"),
               yes: bool = typer.Option(False, "--yes", "-y", help="apply without asking"),
               dry_run: bool = typer.Option(False, "--dry-run", help="show the plan and stop"),
               prune: bool = typer.Option(False, "--prune", help="delete named resources of the listed kinds "
                                                                 "that the file does not list"),
               server: str = server_option()) -> None:
        """Make the cloud match a file: create, update (and with --prune delete) what differs."""
        with connected(server) as client:
            desired = parse_file(_read(file))
            state = fetch_state(client)
            steps = plan(state, desired, prune=prune)
            if not steps:
                say("no changes: the cloud matches the file")
                return
            print_plan(steps)
            if dry_run:
                return
            if not yes and not typer.confirm(f"apply {len(steps)} change(s)?"):
                error("aborted; nothing was changed")
                raise typer.Exit(1)
            try:
                revision = execute(client, steps, desired, state)
            except StepFailed as exc:
                error(f"{exc.step.describe()}: {exc}")
                error(f"nothing was applied: the {len(steps)} change(s) are one transaction")
                raise typer.Exit(1) from None
            except KvnetError as exc:
                error(str(exc))
                error(f"nothing was applied: the {len(steps)} change(s) are one transaction")
                raise typer.Exit(1) from None
        for step in steps:
            _applied(step)
        say(f"applied {len(steps)} change(s) in one transaction (revision {revision})")


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}", field="file") from None


def print_plan(steps: list[Step]) -> None:
    rows = [(Text(s.mark, style=MARK_STYLE[s.mark]), s.action, s.kind, s.project, s.name, Text(_details(s)))
            for s in steps]
    print_table(["", "action", "kind", "project", "name", "changes"], rows,
                title=f"plan: {_counts(steps)}")


def _applied(step: Step) -> None:
    say(f"{step.mark} {step.describe()}", style=MARK_STYLE[step.mark])


def _counts(steps: list[Step]) -> str:
    counts = {mark: sum(1 for s in steps if s.mark == mark) for mark in ("+", "~", "-")}
    return f"{counts['+']} to add, {counts['~']} to change, {counts['-']} to delete"


def _details(step: Step) -> str:
    if "interface" in step.action:
        return f"subnet {step.subnet}"
    if step.action == "create":
        return ", ".join(f"{key}={_short(new)}" for key, (_, new) in step.changes.items())
    return "; ".join(f"{key}: {_short(old)} -> {_short(new)}" for key, (old, new) in step.changes.items())


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "..."
