"""The one interface between the drivers and the host's commands: `Runner.run(argv, input=...)`.

`SYSTEM` runs them for real (subprocess, never raising on a non-zero exit); a test passes a fake kernel
instead (`kvnet.dataplane.linux.fake`), which interprets the same argv and can be told to fail.
`checked` and `json_of` raise `CommandError` on a failing command, as `kvnet.sys.cmd.run` does.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any, Protocol

from kvnet.sys.cmd import CommandError


class Runner(Protocol):
    def run(self, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]: ...


class SystemRunner:
    def run(self, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:  # a missing tool or a hung one: a failed command
            return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: {exc}")


SYSTEM = SystemRunner()


def checked(runner: Runner, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = runner.run(argv, input=input, timeout=timeout)
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr)
    return proc


def json_of(runner: Runner, argv: Sequence[str]) -> Any:
    """An iproute2 `-j` listing, parsed ([] when it printed nothing); CommandError if the command failed."""
    out = checked(runner, argv).stdout.strip()
    try:
        return json.loads(out) if out else []
    except ValueError as exc:
        raise CommandError(argv, 0, f"unreadable JSON: {exc}") from None
