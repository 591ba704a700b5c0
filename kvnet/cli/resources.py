"""`kvnet <kind> create|list|show|update|delete`, generated for every kind from `kvnet.cli.kinds`.

Kind-specific actions (router interfaces, floating IP association, cloud config) live in
`kvnet.cli.actions`; `kvnet apply -f` in `kvnet.cli.apply`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Optional

import typer

from kvnet.cli import actions, apply
from kvnet.cli.common import connected, json_option, parse_assignments, server_option, show
from kvnet.cli.kinds import COMMON, KINDS, KindSpec, Names, Opt, build_body
from kvnet.cli.output import print_json, print_table, say


def register(app: typer.Typer) -> None:
    for spec in KINDS:
        sub = typer.Typer(no_args_is_help=True, help=f"Manage {spec.kind}.")
        _crud(sub, spec)
        actions.EXTRA.get(spec.kind, lambda _: None)(sub)
        app.add_typer(sub, name=spec.command)
    app.add_typer(actions.config_app(), name="config")
    apply.register(app)


def _crud(sub: typer.Typer, spec: KindSpec) -> None:
    kind, singular = spec.kind, spec.command
    sub.command("create", help=f"Create a {singular}.")(_create_command(spec))

    @sub.command("list")
    def list_(as_json: bool = json_option(), server: str = server_option()) -> None:
        """List them all."""
        with connected(server) as client:
            items = sorted(client.list(kind), key=lambda r: (r.get("name") or "~", r["id"]))
            if as_json:
                print_json(items)
                return
            names = Names(client)
            print_table([c.header for c in spec.columns], [[c.get(r, names) for c in spec.columns] for r in items])

    @sub.command("show")
    def show_(ref: str = typer.Argument(..., help="id or name"), as_json: bool = json_option(),
              server: str = server_option()) -> None:
        """Show one, with every field."""
        with connected(server) as client:
            show(client.find(kind, ref), as_json)

    own = actions.OWN_COMMANDS.get(kind, set())
    if "update" not in own:
        @sub.command("update")
        def update(ref: str = typer.Argument(..., help="id or name"),
                   assignments: list[str] = typer.Option(..., "--set", help="FIELD=VALUE, value as YAML (repeat)"),
                   as_json: bool = json_option(), server: str = server_option()) -> None:
            """Change fields, e.g. `--set mtu=1400 --set shared=true`."""
            with connected(server) as client:
                changes = parse_assignments(assignments)
                show(client.update(kind, client.find(kind, ref)["id"], changes), as_json)

    if "delete" in own:
        return

    @sub.command("delete")
    def delete(ref: str = typer.Argument(..., help="id or name"), server: str = server_option()) -> None:
        """Delete one."""
        with connected(server) as client:
            found = client.find(kind, ref)
            client.delete(kind, found["id"])
        say(f"deleted {singular} {found.get('name') or found['id']} ({found['id']})")


def _create_command(spec: KindSpec) -> Callable[..., None]:
    """A function whose signature lists the kind's create options, so typer turns them into flags."""
    options = [_name_opt(o, spec) for o in COMMON] + spec.options

    def create(**values: Any) -> None:
        server, as_json = values.pop("server"), values.pop("as_json")
        with connected(server) as client:
            created = client.create(spec.kind, build_body(client, options, values))
        show(created, as_json)

    params = [inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY, default=_typer_option(o),
                                annotation=_annotation(o)) for o in options]
    params += [inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=json_option(), annotation=bool),
               inspect.Parameter("server", inspect.Parameter.KEYWORD_ONLY, default=server_option(),
                                 annotation=Optional[str])]  # noqa: UP045  # typer needs Optional here
    create.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    create.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return create


def _name_opt(opt: Opt, spec: KindSpec) -> Opt:
    if opt.field == "name" and spec.name_required:
        return Opt(opt.flag, opt.field, help=f"{opt.help} (required: a {spec.command}'s name is its id)",
                   required=True)
    return opt


def _annotation(opt: Opt) -> Any:
    if opt.type is bool:
        return bool
    if opt.multiple:
        return Optional[list[opt.type]]  # type: ignore[name-defined]  # noqa: UP045
    return Optional[opt.type]  # type: ignore[name-defined]  # noqa: UP045


def _typer_option(opt: Opt) -> Any:
    flag = f"--{opt.flag}"
    if opt.type is bool:
        return typer.Option(False, flag, help=opt.help)
    return typer.Option(... if opt.required else None, flag, help=opt.help, show_default=False)
