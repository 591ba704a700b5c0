"""The control-plane benchmark's harness on a small run: a real lab, real agents, every lab removed."""

from __future__ import annotations

import pytest

from kvnet.bench import control
from kvnet.lab import names as n
from kvnet.lab.testing import unique_lab_name
from kvnet.sys import netns

pytestmark = pytest.mark.root


def test_small_convergence_run_measures_every_port_and_cleans_up() -> None:
    name = unique_lab_name()
    result = control.measure_convergence(ports=4, hosts=2, lab_name=name)
    assert result["failures"] == 0 and result["spread"]["n"] == 4
    assert 0 < result["p50_ms"] <= result["p99_ms"] < 10_000
    assert netns.list_with_prefix(n.prefix(name)) == []
