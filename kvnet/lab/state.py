"""`<labdir>/state.json`: what a lab created, so `down` works even after the CLI that built it died.

Sections: "spec" (LabSpec.to_dict), "hosts" {name: {namespace, tunnel_ip, ...}}, "vms" {name: {...}},
"procs" {name: ProcRecord as dict}. Every change is a read-modify-write under an flock on
`state.lock`, written to a temporary file and renamed, so concurrent CLI calls and a crash mid-write
leave a whole file behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SECTIONS = ("spec", "hosts", "vms", "procs")


class StateFile:
    def __init__(self, labdir: Path) -> None:
        self.labdir = labdir
        self.path = labdir / "state.json"
        self._lock_path = labdir / "state.lock"

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        for section in SECTIONS:
            data.setdefault(section, {})
        return data

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Yield the state for editing; write it back when the block ends without an exception."""
        self.labdir.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            yield data
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
            os.replace(tmp, self.path)
