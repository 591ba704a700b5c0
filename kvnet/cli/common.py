"""What every operator command shares: the --server and --json options and a client session."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
import yaml

from kvnet.cli.output import errors_to_exit, print_json, print_record
from kvnet.client import Client
from kvnet.errors import InvalidInput

SERVER_HELP = "API URL (http://HOST:PORT or unix:/path); default $KVNET_URL, else http://127.0.0.1:9797"
PROJECT_HELP = "the project names are looked up in (default $KVNET_PROJECT; none: a name must be unique)"
# Set by `root_options` when the root command is given --server; a command's own --server wins.
_root_server: str | None = None
_root_project: str | None = None


def server_option() -> Any:
    return typer.Option(None, "--server", help=SERVER_HELP, show_default=False)


def json_option() -> Any:
    return typer.Option(False, "--json", help="print JSON (for scripts)")


def root_options(server: str = server_option(),
                 project: str = typer.Option(None, "--project", envvar="KVNET_PROJECT", help=PROJECT_HELP,
                                             show_default=False)) -> None:
    """A root callback (`app.callback()(root_options)`) so `kvnet --server URL network list` works too,
    and `kvnet --project blue network show web` finds blue's `web` among several projects' ones."""
    global _root_server, _root_project
    _root_server, _root_project = server, project


def terminate_like_interrupt() -> None:
    """SIGTERM ends the command as Ctrl-C does (SystemExit unwinds): the labs and namespaces a lab or
    bench command made are removed by their own `finally`, not left behind by a plain kill."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


@contextmanager
def connected(server: str | None) -> Iterator[Client]:
    """A client for the command's server; kvnet errors inside end the command with exit 1."""
    with errors_to_exit(), Client(server or _root_server, project=_root_project) as client:
        yield client


def show(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(record)
    else:
        print_record(record)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are YAML (so JSON too): `mtu=1400`, `shared=true`, `roles=[compute]`.

    A dotted key sets a nested field: `external_gateway.network_id=...`.
    """
    changes: dict[str, Any] = {}
    for item in items:
        key, found, text = item.partition("=")
        if not found or not key:
            raise InvalidInput(f"'{item}' is not KEY=VALUE", field="set")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            raise InvalidInput(f"cannot parse the value of {key}: {exc}", field=key) from None
        *parents, last = key.split(".")
        target = changes
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return changes
