"""`kvnet lab demo --scenario security` on Linux hosts, end to end: its table is what an operator reads
first, so every figure in it must come out and say the lab held (the OVS run is the e2e suite's
`ovs` half, frame for frame)."""

from __future__ import annotations

from kvnet.lab.demo_security import KEYS_TRUE, KEYS_ZERO, demo_ok, render_table, run_security_demo
from kvnet.lab.testing import unique_lab_name


def test_the_security_demo_holds_and_reports_every_figure() -> None:
    data = run_security_demo(unique_lab_name())
    assert demo_ok(data), render_table(data)
    assert data["spoof_attempts"] > 0 and all(k in data for k in (*KEYS_ZERO, *KEYS_TRUE))
    assert 0 < data["remote_group_update_ms_p50"] <= data["remote_group_update_ms_p99"]
