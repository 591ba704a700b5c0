"""Run commands with checked exit codes, optionally inside a network namespace."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any


class CommandError(RuntimeError):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {returncode}: {stderr.strip()[:2000]}")
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


def in_netns(argv: Sequence[str], netns: str | None) -> list[str]:
    """Prefix argv so it runs inside `netns` (no prefix for the current namespace)."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def run(argv: Sequence[str], *, netns: str | None = None, input: str | None = None,
        check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = in_netns(argv, netns)
    proc = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise CommandError(full, proc.returncode, proc.stderr)
    return proc


def run_json(argv: Sequence[str], *, netns: str | None = None) -> Any:
    """Run an iproute2 command with -j and parse its output ([] when it printed nothing)."""
    out = run(argv, netns=netns).stdout.strip()
    return json.loads(out) if out else []
