"""`kvnet lab` commands, run through typer's runner in this process (root: real namespaces)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvnet.lab import names as n
from kvnet.lab.cli import app
from kvnet.lab.testing import temp_root, unique_lab_name
from kvnet.sys import netns

pytestmark = pytest.mark.root


def test_up_status_down() -> None:
    name = unique_lab_name()
    runner = CliRunner()
    with temp_root() as root:
        env = {"KVNET_LAB_DIR": str(root)}
        try:
            res = runner.invoke(app, ["up", "--hosts", "2", "--name", name, "--no-control-plane"], env=env)
            assert res.exit_code == 0, res.output
            assert "h2: namespace" in res.output and "192.0.2.2" in res.output

            res = runner.invoke(app, ["status", "--json", "--name", name], env=env)
            st = json.loads(res.output)
            assert st["up"] is True and set(st["hosts"]) == {"h1", "h2"}

            res = runner.invoke(app, ["up", "--name", name, "--no-control-plane"], env=env)
            assert res.exit_code == 1 and "already up" in res.output

            res = runner.invoke(app, ["vm", "exec", "nosuchvm", "--name", name, "--", "true"], env=env)
            assert res.exit_code == 1 and "no VM" in res.output

            # An API error (here: no server) is one line, not a traceback.
            res = runner.invoke(app, ["vm", "create", "vm1", "--host", "h1", "--network", "blue", "--name", name],
                                env=env)
            assert res.exit_code == 1 and res.output.startswith("error: cannot reach the kvnet server")
            assert "Traceback" not in res.output and len(res.output.splitlines()) == 1

            res = runner.invoke(app, ["down", "--name", name], env=env)
            assert res.exit_code == 0 and "removed 4 namespace(s)" in res.output
            assert netns.list_with_prefix(n.prefix(name)) == []

            res = runner.invoke(app, ["status", "--name", name], env=env)
            assert res.exit_code == 1 and "NOT up" in res.output
        finally:
            netns.delete_with_prefix(n.prefix(name))


def test_bad_lab_name_is_refused() -> None:
    res = CliRunner().invoke(app, ["up", "--name", "no-dash", "--no-control-plane"])
    assert res.exit_code == 1 and "lab name" in res.output
