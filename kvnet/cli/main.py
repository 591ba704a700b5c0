"""The `kvnet` command: one typer app; each area registers its commands from its own module."""

from __future__ import annotations

import typer

from kvnet.cli import daemons, resources
from kvnet.cli.common import root_options

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="kvnet: network virtualization for small and medium KVM private clouds.")

app.callback()(root_options)
daemons.register(app)
resources.register(app)


def _optional(module: str, name: str) -> None:
    """Sub-apps whose module may be absent in a partial checkout stay out of the way."""
    import importlib

    try:
        sub = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("kvnet"):
            return
        raise
    app.add_typer(sub.app, name=name)


_optional("kvnet.lab.cli", "lab")
_optional("kvnet.cli.bench", "bench")
_optional("kvnet.cli.sriov", "sriov")
