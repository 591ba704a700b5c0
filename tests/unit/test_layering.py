"""The dataplane depends on the plan contract, never on the agent."""

from __future__ import annotations

import re
from pathlib import Path

DATAPLANE = Path(__file__).resolve().parents[2] / "kvnet" / "dataplane"


def test_no_dataplane_module_imports_the_agent() -> None:
    importing = [str(path.relative_to(DATAPLANE)) for path in sorted(DATAPLANE.rglob("*.py"))
                 if re.search(r"^\s*(from|import) kvnet\.agent\b", path.read_text(), re.MULTILINE)]
    assert importing == []
