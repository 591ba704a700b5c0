"""Background CPU load: busy/sleep loops at a duty cycle, one per CPU, in a host namespace.

Each loop is a tiny python process in its own process group (the namespace changes nothing for the
CPU, it keeps the load attributable and inside what the benchmark built); the group is killed on exit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from kvnet.bench.dataplane import procs

PERIOD_S = 0.01

LOOP = """
import sys, time
duty, period = float(sys.argv[1]), float(sys.argv[2])
busy = duty * period
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < busy:
        pass
    rest = period - (time.perf_counter() - start)
    if rest > 0:
        time.sleep(rest)
"""


def loop_argv(percent: float, cpu: int | None = None) -> list[str]:
    argv = [sys.executable, "-c", LOOP, f"{percent / 100:.3f}", f"{PERIOD_S}"]
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


@contextmanager
def cpu_load(percent: float, netns: str, *, procs_n: int | None = None, pin: bool = False) -> Iterator[None]:
    """Run `procs_n` (default: one per CPU) busy loops at `percent` duty cycle for the block."""
    if not 0 <= percent <= 100:
        raise ValueError(f"cpu load {percent}% outside 0..100")
    if percent == 0:
        yield
        return
    n = procs_n or os.cpu_count() or 1
    with ExitStack() as stack:
        for i in range(n):
            cpu = i % (os.cpu_count() or 1) if pin else None
            stack.enter_context(procs.group(loop_argv(percent, cpu), netns=netns))
        yield
