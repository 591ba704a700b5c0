"""`ip`/`bridge -force -batch -` with a result per line: which lines the kernel refused, and why.

With `-force`, iproute2 goes on after a failing line and reports it on stderr: the kernel's message,
then `Command failed -:<n>` (n counts stdin's lines from 1). One exception: `ip neigh` ends the whole
process when the kernel refuses an entry (iproute2 6.1, `ipneigh_modify`: exit(2)), printing the message
but no line number, and nothing after it runs. So a run of consecutive neighbour lines is a batch of its
own, and when it stops early its rest runs again with a marker after each entry (a command that fails by
design, so it prints its own line number): the entry after the last marker seen is the one refused.
Running neighbour lines twice is harmless: `replace` is idempotent, and a `del` whose entry went in the
first run answers ENOENT, which counts as done. Any other batch that stops early (never seen: only a
malformed line could) has every line after its last reported one counted as not applied.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import groupby

from kvnet.sys.runner import Runner

_FAILED = re.compile(r"^Command failed -:(\d+)$")
MARKER = "link show dev kvnet-mark"  # a device nobody creates: the line fails, printing its number
MAX_RERUNS = 16  # refused neighbour entries found one per rerun; past that the rest counts as not applied
ENOENT = "No such file or directory"


def parse_stderr(stderr: str) -> tuple[dict[int, str], str]:
    """({1-based line: message}, the text after the last reported line: an early exit's message or "")."""
    failed: dict[int, str] = {}
    pending: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        match = _FAILED.match(line)
        if match:
            failed[int(match.group(1))] = " ".join(pending) or "failed"
            pending = []
        elif line:
            pending.append(line)
    return failed, " ".join(pending)


def _is_neigh(line: str) -> bool:
    return line.startswith("neigh ")


def run_batch(runner: Runner, tool: Sequence[str], lines: Sequence[str], timeout: float = 300) -> dict[int, str]:
    """Run `lines` (0-based) with `tool` (`ip -n ns`, `bridge`...); returns {line index: message} of those
    the kernel did not apply."""
    failed: dict[int, str] = {}
    start = 0
    for neigh, group in groupby(lines, key=_is_neigh):
        segment = list(group)
        found = _run_neigh(runner, tool, segment, timeout) if neigh else _run_plain(runner, tool, segment, timeout)
        failed.update({start + i: message for i, message in found.items()})
        start += len(segment)
    return failed


def _run(runner: Runner, tool: Sequence[str], lines: list[str], timeout: float) -> tuple[int, dict[int, str], str]:
    proc = runner.run([*tool, "-force", "-batch", "-"], input="\n".join(lines) + "\n", timeout=timeout)
    if proc.returncode == 0:
        return 0, {}, ""
    failed, trailing = parse_stderr(proc.stderr)
    if not failed and not trailing:
        trailing = f"exited {proc.returncode}"
    return proc.returncode, failed, trailing


def _run_plain(runner: Runner, tool: Sequence[str], lines: list[str], timeout: float) -> dict[int, str]:
    code, failed, trailing = _run(runner, tool, lines, timeout)
    found = {n - 1: message for n, message in failed.items() if 0 < n <= len(lines)}
    if code and trailing:  # stopped early: nothing after the last reported line is known to have run
        last = max(failed, default=0)
        found.update({i: f"not applied, the batch stopped early: {trailing}" for i in range(last, len(lines))})
    return found


def _run_neigh(runner: Runner, tool: Sequence[str], lines: list[str], timeout: float) -> dict[int, str]:
    code, failed, trailing = _run(runner, tool, lines, timeout)
    found = {n - 1: message for n, message in failed.items() if 0 < n <= len(lines)}
    if not (code and trailing):
        return found
    start = max(failed, default=0)  # the refused entry is at or after this index
    for _ in range(MAX_RERUNS):
        rest = lines[start:]
        code, failed, trailing = _run(runner, tool, [x for line in rest for x in (line, MARKER)], timeout)
        for n, message in failed.items():  # odd numbers are entries, even ones markers
            if n % 2 and not (rest[n // 2].startswith("neigh del") and ENOENT in message):
                found[start + n // 2] = message
        if not (code and trailing):
            return found
        refused = max((n // 2 for n in failed if n % 2 == 0), default=0)  # the entry after the last marker seen
        if not (rest[refused].startswith("neigh del") and ENOENT in trailing):
            found[start + refused] = trailing
        start += refused + 1
        if start >= len(lines):
            return found
    found.update({i: "not applied: too many refused entries in one batch" for i in range(start, len(lines))})
    return found
