"""apply(changes, netns): write a ChangeSet to the kernel in at most three batched commands.

`ip -force -batch -` / `bridge -force -batch -` read commands from stdin; `-force` keeps going after
a failing line so one error does not hide (or block) the others. Any failure is returned as an
error string: the failed changes simply stay different from the plan, and the next reconcile
(which re-observes the kernel) retries exactly them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import groupby

from kvnet.dataplane.linux.diff import ChangeSet
from kvnet.dataplane.linux.observe import tool
from kvnet.dataplane.linux.state import Attachment, Fdb, Link
from kvnet.sys.cmd import run


def _link_add(link: Link) -> Iterable[str]:
    if link.vxlan is None:
        yield f"link add name {link.name} type {link.kind}"
        return
    v = link.vxlan
    yield (f"link add name {link.name} type vxlan id {v.vni} local {v.local} dstport {v.dstport} "
           f"{'learning' if v.learning else 'nolearning'} {'proxy' if v.proxy else 'noproxy'}")


def _link_set(link: Link) -> Iterable[str]:
    master = f"master {link.master}" if link.master else "nomaster"
    mtu = f" mtu {link.mtu}" if link.mtu else ""
    yield f"link set dev {link.name} alias {link.alias} {master}{mtu} {'up' if link.up else 'down'}"
    if link.port is not None:  # bridge-port flags exist only once enslaved, hence a second line
        p = link.port
        yield (f"link set dev {link.name} type bridge_slave learning {'on' if p.learning else 'off'} "
               f"neigh_suppress {'on' if p.neigh_suppress else 'off'}")


def _attach(att: Attachment) -> Iterable[str]:
    mtu = f" mtu {att.mtu}" if att.mtu else ""
    yield f"link set dev {att.device} master {att.master}{mtu} up"


def _fdb_set(entry: Fdb) -> Iterable[str]:
    # Flood entries share the all-zero MAC, so each extra VTEP is appended; unicast ones are replaced.
    verb = "append" if entry.flood else "replace"
    yield f"fdb {verb} {entry.mac} dev {entry.dev} dst {entry.dst} self permanent"


# The one apply order (Faucet's valve_flowreorder): deletes child -> parent, then creates
# parent -> child. Consecutive steps of the same tool share one batch process.
Step = tuple[str, Callable[[ChangeSet], Iterable[str]]]
ORDER: tuple[Step, ...] = (
    ("bridge", lambda c: (f"fdb del {f.mac} dev {f.dev} dst {f.dst} self" for f in c.fdb_del)),
    ("ip", lambda c: (f"neigh del {n.ip} dev {n.dev}" for n in c.neigh_del)),
    ("ip", lambda c: (f"link set dev {d} nomaster" for d in c.detach)),
    ("ip", lambda c: (f"link del dev {name}" for name in c.link_del)),
    ("ip", lambda c: (line for link in c.link_add for line in _link_add(link))),
    ("ip", lambda c: (line for link in c.link_add + c.link_change for line in _link_set(link))),
    ("ip", lambda c: (line for att in c.attach for line in _attach(att))),
    ("ip", lambda c: (f"neigh replace {n.ip} lladdr {n.mac} dev {n.dev} nud permanent"
                      for n in c.neigh_add + c.neigh_change)),
    ("bridge", lambda c: (line for f in c.fdb_add + c.fdb_change for line in _fdb_set(f))),
)


def batches(changes: ChangeSet) -> list[tuple[str, list[str]]]:
    """The (tool, lines) batches apply runs, in order; empty ones dropped. Pure, for tests."""
    out = []
    for name, steps in groupby(ORDER, key=lambda step: step[0]):
        lines = [line for _, render in steps for line in render(changes)]
        if lines:
            out.append((name, lines))
    return out


def apply(changes: ChangeSet, netns: str | None = None) -> list[str]:
    """Run the batches; return one error string per failed batch (empty list: all applied)."""
    errors = []
    for name, lines in batches(changes):
        proc = run([*tool(name, netns), "-force", "-batch", "-"], input="\n".join(lines) + "\n",
                   check=False, timeout=300)
        if proc.returncode != 0:
            errors.append(f"{name} -batch ({len(lines)} lines): {proc.stderr.strip()[:4000]}")
    return errors
