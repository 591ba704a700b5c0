"""OpenFlow I/O through `ovs-ofctl`: dump kvnet's flows of a bridge, apply a change as one bundle.

The bridge is addressed by its management socket `<rundir>/<bridge>.mgmt`, so the instance is
explicit and no environment variable decides which vswitchd we talk to. `--bundle add-flows` reads
`delete_strict ...` and `add ...` lines from stdin and commits them atomically (OpenFlow 1.4
bundles): a packet sees either the old or the new flows, never a half-applied table, and a changed
flow is never briefly missing. One process per bridge and pass, whatever the number of flows.
"""

from __future__ import annotations

import re
from pathlib import Path

from kvnet.dataplane.ovs.state import OWNED_COOKIE_MATCH, Flow, ObservedFlow
from kvnet.sys.cmd import run

OFCTL = ("ovs-ofctl", "-O", "OpenFlow14")
DEFAULT_PRIORITY = 32768
_STAT_KEYS = ("cookie=", "duration=", "table=", "n_packets=", "n_bytes=", "idle_timeout=", "hard_timeout=",
              "idle_age=", "hard_age=", "importance=", "reset_counts", "send_flow_rem", "check_overlap",
              "no_packet_counts", "no_byte_counts", "out_port=", "out_group=")


def target(rundir: Path, bridge: str) -> str:
    return f"unix:{rundir / bridge}.mgmt"


def dump(rundir: Path, bridge: str, cookie_match: str = OWNED_COOKIE_MATCH) -> list[ObservedFlow]:
    """kvnet-owned flows of `bridge` (by cookie mark); [] when the bridge does not exist."""
    if not (rundir / f"{bridge}.mgmt").exists():
        return []
    out = run([*OFCTL, "--no-stats", "--no-names", "dump-flows", target(rundir, bridge), cookie_match]).stdout
    return [parse_flow(bridge, line) for line in out.splitlines() if line.strip().startswith("cookie=")]


# What `--no-stats` prints for a flow with an explicit priority (every flow kvnet writes): parsed in one go.
_PLAIN = re.compile(r"\s*cookie=(0x[0-9a-f]+), (?:table=(\d+), )?priority=(\d+)(?:,(\S+))? actions=")


def parse_flow(bridge: str, line: str) -> ObservedFlow:
    """` cookie=0x.., table=10, priority=100,arp,reg6=0x5 actions=...` -> cookie, table, priority, match."""
    plain = _PLAIN.match(line)
    if plain:
        cookie, table, priority, match = plain.groups()
        return ObservedFlow(bridge, int(cookie, 16), int(table or 0), int(priority), match or "")
    head = line.strip().split(" actions=", 1)[0]
    cookie = int(re.search(r"cookie=(0x[0-9a-f]+)", head).group(1), 16)  # type: ignore[union-attr]
    table_m = re.search(r"\btable=(\d+)", head)
    last = head.split(", ")[-1]
    priority, match = DEFAULT_PRIORITY, ""
    if last.startswith("priority="):
        prio, _, match = last.partition(",")
        priority = int(prio.removeprefix("priority="))
    elif not last.startswith(_STAT_KEYS):
        match = last
    return ObservedFlow(bridge, cookie, int(table_m.group(1)) if table_m else 0, priority, match)


def bundle_lines(add: list[Flow], delete: list[ObservedFlow]) -> list[str]:
    """Deletes first: a changed flow keeps its match, so its new version must not be deleted after."""
    return [f.delete_line() for f in delete] + [f.add_line() for f in add]


def apply(rundir: Path, bridge: str, add: list[Flow], delete: list[ObservedFlow]) -> str | None:
    """Apply one bridge's flow changes as one bundle; an error string if OVS rejected it (nothing applied)."""
    lines = bundle_lines(add, delete)
    if not lines:
        return None
    proc = run([*OFCTL, "--bundle", "add-flows", target(rundir, bridge), "-"], input="\n".join(lines) + "\n",
               check=False, timeout=300)
    if proc.returncode != 0:
        return f"ovs-ofctl --bundle {bridge} ({len(lines)} flow changes): {proc.stderr.strip()[:2000]}"
    return None


def has_flow(rundir: Path, flow: Flow) -> bool:
    """Is exactly this flow installed (by its cookie)? One cheap dump, for the restart monitor."""
    if not (rundir / f"{flow.bridge}.mgmt").exists():
        return False
    proc = run([*OFCTL, "--no-stats", "dump-flows", target(rundir, flow.bridge), f"cookie={flow.cookie:#x}/-1"],
               check=False, timeout=10)
    return proc.returncode == 0 and "cookie=" in proc.stdout
