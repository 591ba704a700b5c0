"""observe / diff / script of kvnet's two filter tables, object by object (`filter_render` says what).

The objects: the tables' skeleton (maps and base chains, created together, versioned by an empty chain
`skeleton-<version>`), content-named chains (`o-`, `i-`, `e-`, `n-`), map elements and the elements of
address sets. A pass reads the chain names, the maps and the sets (three `nft -j` listings, no rule is
parsed), and writes what differs in one `nft -f` transaction: new sets and chains first, then the map
elements that point to them, then what nothing points to any more. A rebuilt skeleton (a table missing,
or of another version) rewrites both tables in the same single transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kvnet.dataplane.linux.filter_render import (
    BASE_CHAINS,
    BRIDGE,
    INET,
    MAPS,
    SKELETON_VERSION,
    TABLE,
    DesiredFilters,
    SetSpec,
)
from kvnet.sys.cmd import in_netns
from kvnet.sys.runner import Runner, json_of

FAMILIES = (BRIDGE, INET)
SKELETON = f"skeleton-{SKELETON_VERSION}"
OWNED_CHAIN = re.compile(r"^[oien]-(.+)-[0-9a-f]{10}$")  # content-named: <kind>-<device>-<digest>
OWNED_SET = re.compile(r"^(g[46]-|r[0-9a-f]{12}$)")  # remote groups' members; rule sets named by content
CONTENT_NAMED_SET = re.compile(r"^r[0-9a-f]{12}$")  # its name says what it holds: its elements are not read
LEGACY_TABLE = ("netdev", "kvnet")  # the gateway redirects' table before filters took them over


@dataclass
class ObservedFilters:
    tables: set[tuple[str, str]] = field(default_factory=set)  # (family, name) of every table on the host
    chains: set[tuple[str, str]] = field(default_factory=set)  # (family, chain) in kvnet's tables
    elements: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    sets: dict[tuple[str, str], frozenset[str] | None] = field(default_factory=dict)  # None: content-named

    @property
    def skeleton(self) -> bool:
        return all((family, SKELETON) in self.chains for family in FAMILIES)

    def applied(self, changes: FilterChanges) -> ObservedFilters:
        """The tables once `changes` went through (what a later phase of the pass starts from)."""
        out = ObservedFilters(set() if changes.rebuild else set(self.tables), set() if changes.rebuild else
                              set(self.chains), {} if changes.rebuild else {k: dict(v) for k, v in
                                                                             self.elements.items()},
                              {} if changes.rebuild else dict(self.sets))
        out.tables.discard(LEGACY_TABLE)
        if changes.rebuild:
            out.tables |= {(family, TABLE) for family in FAMILIES}
            out.chains |= {(family, SKELETON) for family in FAMILIES} | set(BASE_CHAINS)
        for spec, members in changes.add_sets:
            out.sets[(spec.family, spec.name)] = members
        out.chains |= {(family, name) for family, name, _ in changes.add_chains}
        for family, name, key in changes.del_elements:
            out.elements.get((family, name), {}).pop(key, None)
        for family, name, key, value in changes.add_elements:
            out.elements.setdefault((family, name), {})[key] = value
        out.chains -= set(changes.del_chains)
        for family, name, element in changes.set_adds:
            out.sets[(family, name)] = (out.sets[(family, name)] or frozenset()) | {element}
        for family, name, element in changes.set_dels:
            out.sets[(family, name)] = (out.sets[(family, name)] or frozenset()) - {element}
        for key in changes.del_sets:
            out.sets.pop(key, None)
        return out

    def marks(self) -> dict[str, int]:
        """device -> its mark, from the egress dispatch map (`jump e-<device>-<digest>`)."""
        out = {}
        for key, verdict in self.elements.get((INET, "sg_out"), {}).items():
            match = OWNED_CHAIN.match(verdict.removeprefix("jump "))
            if match and key.isdigit():
                out[match.group(1)] = int(key)
        return out


def observe(runner: Runner, netns: str | None) -> ObservedFilters:
    """Raises CommandError when nft cannot list (the tables' state is then unknown)."""
    out = ObservedFilters()
    for row in _rows(json_of(runner, in_netns(["nft", "-j", "list", "chains"], netns)), "chain"):
        out.tables.add((row["family"], row["table"]))  # a table without chains is as good as absent
        if _ours(row):
            out.chains.add((row["family"], row["name"]))
    if not out.skeleton:
        return out  # rebuilt as a whole: its maps and sets do not matter
    for row in _rows(json_of(runner, in_netns(["nft", "-j", "list", "maps"], netns)), "map"):
        if _ours(row):
            out.elements[(row["family"], row["name"])] = {_key(k): _verdict(v) for k, v in row.get("elem", [])}
    for row in _rows(json_of(runner, in_netns(["nft", "-j", "list", "sets"], netns)), "set"):
        if _ours(row):
            out.sets[(row["family"], row["name"])] = None if CONTENT_NAMED_SET.match(row["name"]) else \
                frozenset(_prefix(e) for e in row.get("elem", []))
    return out


def _rows(data: Any, kind: str) -> Iterable[dict[str, Any]]:
    return (item[kind] for item in (data or {}).get("nftables", []) if kind in item)


def _ours(row: dict[str, Any]) -> bool:
    return row.get("table") == TABLE and row.get("family") in FAMILIES


def _key(key: Any) -> str:
    return str(key)


def _verdict(value: Any) -> str:
    if isinstance(value, dict):
        if "jump" in value:
            return f"jump {value['jump']['target']}"
        return next(iter(value))  # {"accept": null}, {"drop": null}
    return str(value)  # a zone


def _prefix(elem: Any) -> str:
    if isinstance(elem, dict) and "prefix" in elem:
        return f"{elem['prefix']['addr']}/{elem['prefix']['len']}"
    text = str(elem)
    return f"{text}/{128 if ':' in text else 32}"


@dataclass
class FilterChanges:
    rebuild: bool = False
    drop_legacy: bool = False
    add_sets: list[tuple[SetSpec, frozenset[str]]] = field(default_factory=list)
    add_chains: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # family, name, rules
    del_elements: list[tuple[str, str, str]] = field(default_factory=list)  # family, map, key
    add_elements: list[tuple[str, str, str, str]] = field(default_factory=list)  # family, map, key, value
    del_chains: list[tuple[str, str]] = field(default_factory=list)
    set_adds: list[tuple[str, str, str]] = field(default_factory=list)  # family, set, element
    set_dels: list[tuple[str, str, str]] = field(default_factory=list)
    del_sets: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)

    def devices(self) -> set[str]:
        """The devices whose chains or dispatch this changes (their ports wait for it)."""
        out = {key for _, name, key, _ in self.add_elements if name in ("out", "in")}
        out |= {m.group(1) for _, name, _ in self.add_chains if (m := OWNED_CHAIN.match(name))}
        return out

    def counts(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        added = {"filter_chain": len(self.add_chains), "filter_set": len(self.add_sets),
                 "filter_element": len(self.add_elements) + len(self.set_adds)}
        removed = {"filter_chain": len(self.del_chains), "filter_set": len(self.del_sets),
                   "filter_element": len(self.del_elements) + len(self.set_dels)}
        return added, {"filter_table": int(self.rebuild)}, removed


def diff(want: DesiredFilters, have: ObservedFilters) -> FilterChanges:
    changes = FilterChanges(drop_legacy=LEGACY_TABLE in have.tables)
    if not have.skeleton:
        have = ObservedFilters()  # rebuilt from nothing, in the same transaction
        changes.rebuild = True
    for key, (spec, members) in sorted(want.sets.items()):
        if key not in have.sets:
            changes.add_sets.append((spec, members))
            continue
        current = have.sets[key]
        if current is None:
            continue  # named after what it holds
        changes.set_adds += [(*key, e) for e in sorted(members - current)]
        changes.set_dels += [(*key, e) for e in sorted(current - members)]
    changes.add_chains = [(family, name, rules) for (family, name), rules in sorted(want.chains.items())
                          if (family, name) not in have.chains]
    for key, elements in sorted(want.elements.items()):
        current = have.elements.get(key, {})
        for name, value in sorted(elements.items()):
            if current.get(name) != value:
                if name in current:
                    changes.del_elements.append((*key, name))
                changes.add_elements.append((*key, name, value))
        changes.del_elements += [(*key, name) for name in sorted(set(current) - set(elements))]
    changes.del_chains = sorted(c for c in have.chains - set(want.chains) if OWNED_CHAIN.match(c[1]))
    changes.del_sets = sorted(s for s in set(have.sets) - set(want.sets) if OWNED_SET.match(s[1]))
    return changes


def script(changes: FilterChanges) -> str:
    """One nft transaction, in the order that never leaves a reference dangling."""
    lines: list[str] = []
    if changes.drop_legacy:
        lines += [f"add table {' '.join(LEGACY_TABLE)}", f"delete table {' '.join(LEGACY_TABLE)}"]
    if changes.rebuild:
        lines += _skeleton()
    for spec, members in changes.add_sets:
        lines.append(f"add set {spec.family} {TABLE} {spec.name} {{ {spec.declaration} }}")
        if members:
            lines.append(f"add element {spec.family} {TABLE} {spec.name} {{ {', '.join(sorted(members))} }}")
    for family, name, rules in changes.add_chains:
        lines.append(f"add chain {family} {TABLE} {name}")
        lines += [f"add rule {family} {TABLE} {name} {rule}" for rule in rules]
    lines += [f"delete element {family} {TABLE} {name} {{ {_quoted(key)} }}"
              for family, name, key in changes.del_elements]
    lines += [f"add element {family} {TABLE} {name} {{ {_quoted(key)} : {value} }}"
              for family, name, key, value in changes.add_elements]
    lines += [f"delete chain {family} {TABLE} {name}" for family, name in changes.del_chains]
    lines += [f"add element {family} {TABLE} {name} {{ {e} }}" for family, name, e in changes.set_adds]
    lines += [f"delete element {family} {TABLE} {name} {{ {e} }}" for family, name, e in changes.set_dels]
    lines += [f"delete set {family} {TABLE} {name}" for family, name in changes.del_sets]
    return "\n".join(lines) + "\n"


def _skeleton() -> list[str]:
    """Both tables from nothing: whatever they held is gone with them, in the same transaction."""
    lines = []
    for family in FAMILIES:
        lines += [f"add table {family} {TABLE}", f"delete table {family} {TABLE}", f"add table {family} {TABLE}",
                  f"add chain {family} {TABLE} {SKELETON}"]
        lines += [f"add map {family} {TABLE} {spec.name} {{ {spec.declaration} }}"
                  for spec in MAPS if spec.family == family]
    # Base chains last: the maps they dispatch through exist, and are empty until filled below.
    for (family, name), (hook, rules) in BASE_CHAINS.items():
        lines.append(f"add chain {family} {TABLE} {name} {{ {hook} }}")
        lines += [f"add rule {family} {TABLE} {name} {rule}" for rule in rules]
    return lines


def _quoted(key: str) -> str:
    return key if key.isdigit() else f'"{key}"'
