"""apply(changes, netns): write a ChangeSet to the kernel in a few batched commands.

`ip -force -batch -` / `bridge -force -batch -` read commands from stdin; `-force` keeps going after
a failing line so one error does not hide (or block) the others (`kvnet.sys.batch`). Every line knows
the object it writes, so a refused line comes back as a `Failure` of that object, for the ports its
device serves: the failed change simply stays different from the plan, and the next reconcile (which
re-observes the kernel) retries exactly it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import groupby
from typing import NamedTuple

from kvnet.dataplane.linux.diff import ChangeSet
from kvnet.dataplane.linux.observe import tool
from kvnet.dataplane.linux.state import Attachment, Fdb, Link, Neigh, PortConf
from kvnet.dataplane.result import Failure
from kvnet.sys.batch import run_batch
from kvnet.sys.runner import SYSTEM, Runner


class Line(NamedTuple):
    """One batch line and the object it writes: `dev` is the device it sits on (which ports it serves).
    `removal`: the line takes something away, so a device already gone means it is done."""

    text: str
    kind: str
    key: str
    dev: str
    removal: bool = False


GONE = ("Cannot find device", "No such device")  # what iproute2 says of a device that does not exist


def _link(text: str, name: str) -> Line:
    return Line(text, "link", name, name)


def _link_add(link: Link) -> Iterable[Line]:
    if link.vxlan is None:
        yield _link(f"link add name {link.name} type {link.kind}", link.name)
        return
    v = link.vxlan
    yield _link(f"link add name {link.name} type vxlan id {v.vni} local {v.local} dstport {v.dstport} "
                f"{'learning' if v.learning else 'nolearning'} {'proxy' if v.proxy else 'noproxy'}", link.name)


def _link_set(link: Link) -> Iterable[Line]:
    master = f"master {link.master}" if link.master else "nomaster"
    mtu = f" mtu {link.mtu}" if link.mtu else ""
    yield _link(f"link set dev {link.name} alias {link.alias} {master}{mtu} {'up' if link.up else 'down'}", link.name)
    if link.port is not None:  # bridge-port flags exist only once enslaved, hence a second line
        yield _link(f"link set dev {link.name} type bridge_slave {_port_flags(link.port)}", link.name)


def _port_flags(port: PortConf) -> str:
    return f"learning {'on' if port.learning else 'off'} neigh_suppress {'on' if port.neigh_suppress else 'off'}"


def _attach(att: Attachment) -> Iterable[Line]:
    mtu = f" mtu {att.mtu}" if att.mtu else ""
    yield Line(f"link set dev {att.device} master {att.master}{mtu} up", "port", att.device, att.device)
    if att.port is not None:
        yield Line(f"link set dev {att.device} type bridge_slave {_port_flags(att.port)}", "port", att.device,
                   att.device)


def _fdb(verb: str, entry: Fdb, tail: str) -> Line:
    return Line(f"fdb {verb} {entry.mac} dev {entry.dev} dst {entry.dst} self{tail}", "fdb",
                f"{entry.mac} dst {entry.dst} dev {entry.dev}", entry.dev)


def _fdb_set(entry: Fdb) -> Iterable[Line]:
    # Flood entries share the all-zero MAC, so each extra VTEP is appended; unicast ones are replaced.
    yield _fdb("append" if entry.flood else "replace", entry, " permanent")


def _neigh(text: str, entry: Neigh) -> Line:
    return Line(text, "neigh", f"{entry.ip} dev {entry.dev}", entry.dev)


# The one apply order (Faucet's valve_flowreorder): deletes child -> parent, then creates
# parent -> child. Consecutive steps of the same tool share one batch process.
Step = tuple[str, Callable[[ChangeSet], Iterable[Line]]]
ORDER: tuple[Step, ...] = (
    ("bridge", lambda c: (_fdb("del", f, "")._replace(removal=True) for f in c.fdb_del)),
    ("ip", lambda c: (_neigh(f"neigh del {n.ip} dev {n.dev}", n)._replace(removal=True) for n in c.neigh_del)),
    ("ip", lambda c: (Line(f"link set dev {d} nomaster", "port", d, d, removal=True) for d in c.detach)),
    ("ip", lambda c: (_link(f"link del dev {name}", name)._replace(removal=True) for name in c.link_del)),
    ("ip", lambda c: (line for link in c.link_add for line in _link_add(link))),
    ("ip", lambda c: (line for link in c.link_add + c.link_change for line in _link_set(link))),
    ("ip", lambda c: (line for att in c.attach for line in _attach(att))),
    ("ip", lambda c: (_neigh(f"neigh replace {n.ip} lladdr {n.mac} dev {n.dev} nud permanent", n)
                      for n in c.neigh_add + c.neigh_change)),
    ("bridge", lambda c: (line for f in c.fdb_add + c.fdb_change for line in _fdb_set(f))),
)


def batch_lines(changes: ChangeSet) -> list[tuple[str, list[Line]]]:
    """The (tool, lines) batches apply runs, in order; empty ones dropped. Pure."""
    out = []
    for name, steps in groupby(ORDER, key=lambda step: step[0]):
        lines = [line for _, render in steps for line in render(changes)]
        if lines:
            out.append((name, lines))
    return out


def batches(changes: ChangeSet) -> list[tuple[str, list[str]]]:
    """`batch_lines` as text, for tests."""
    return [(name, [line.text for line in lines]) for name, lines in batch_lines(changes)]


def apply(changes: ChangeSet, netns: str | None = None, runner: Runner = SYSTEM,
          serves: Mapping[str, tuple[str, ...]] | None = None) -> list[Failure]:
    """Run the batches; one Failure per refused line, for the ports `serves` maps its device to."""
    serves = serves or {}
    failures = []
    for name, lines in batch_lines(changes):
        refused = run_batch(runner, tool(name, netns), [line.text for line in lines])
        for index, message in sorted(refused.items()):
            line = lines[index]
            if not (line.removal and any(gone in message for gone in GONE)):
                failures.append(Failure(line.kind, line.key, message, serves.get(line.dev, ())))
    return failures
