"""observe / diff / script of kvnet's two filter tables, object by object (`filter_render` says what).

The objects: the tables' skeleton (containers, hooked and fixed chains, created together and versioned
by an empty chain `skeleton-<version>`), the shared rule chains (`e-`/`i-` + digest), the sets made on
demand (rule sets `r<digest>`, remote groups `g4-`/`g6-`) and the elements of every set and map. A pass
reads the chain names, each container's elements and the on-demand sets' names -- named listings only:
listing all maps or sets makes nft read every rule too (2 s at 1,000 ports) -- and writes what differs
in one `nft -f` transaction: new sets and chains first, then elements, then what nothing points to any
more. A missing or outdated skeleton rebuilds both tables in the same single transaction.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kvnet.dataplane.linux.filter_render import (
    BRIDGE,
    CONTAINERS,
    FIXED_CHAINS,
    HOOKED,
    INET,
    SKELETON_VERSION,
    TABLE,
    Container,
    DesiredFilters,
    hex128,
)
from kvnet.sys.cmd import in_netns
from kvnet.sys.runner import Runner, json_of

FAMILIES = (BRIDGE, INET)
SKELETON = f"skeleton-{SKELETON_VERSION}"
RULE_CHAIN = re.compile(r"^[ei]-[0-9a-f]{12}$")  # shared rule chains, named after their content
ON_DEMAND_SET = re.compile(r"^(g[46]-.+|r[0-9a-f]{12})$")  # remote groups' members; rule sets
CONTENT_NAMED_SET = re.compile(r"^r[0-9a-f]{12}$")  # its name says what it holds: its elements are not read
LEGACY_TABLE = ("netdev", "kvnet")  # the gateway redirects' table before the filters took them over
MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


@dataclass
class ObservedFilters:
    tables: set[tuple[str, str]] = field(default_factory=set)  # (family, name) of every table with chains
    chains: set[tuple[str, str]] = field(default_factory=set)  # (family, chain) in kvnet's tables
    elements: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # container -> key -> value
    sets: set[tuple[str, str]] = field(default_factory=set)  # the on-demand sets there are

    @property
    def skeleton(self) -> bool:
        return all((family, SKELETON) in self.chains for family in FAMILIES)

    def marks(self) -> dict[str, int]:
        """device -> its mark, from the `sender` map."""
        return {key.strip('"'): int(value) for key, value in self.elements.get((BRIDGE, "sender"), {}).items()
                if value.isdigit()}

    def applied(self, changes: FilterChanges) -> ObservedFilters:
        """The tables once `changes` went through (what a later phase of the pass starts from)."""
        if changes.rebuild:
            out = ObservedFilters(tables={(f, TABLE) for f in FAMILIES},
                                  chains={(f, SKELETON) for f in FAMILIES} | set(FIXED_CHAINS),
                                  elements={c.key: {} for c in CONTAINERS})
        else:
            out = ObservedFilters(set(self.tables), set(self.chains), {k: dict(v) for k, v in self.elements.items()},
                                  set(self.sets))
        out.tables.discard(LEGACY_TABLE)
        for container, members in changes.add_sets:
            out.sets.add(container.key)
            out.elements[container.key] = {m: "" for m in members}
        out.chains |= {(family, name) for family, name, _ in changes.add_chains}
        for family, name, key in changes.del_elements:
            out.elements.get((family, name), {}).pop(key, None)
        for family, name, key, value in changes.add_elements:
            out.elements.setdefault((family, name), {})[key] = value
        out.chains -= set(changes.del_chains)
        out.sets -= set(changes.del_sets)
        for key in changes.del_sets:
            out.elements.pop(key, None)
        return out


def observe(runner: Runner, netns: str | None) -> ObservedFilters:
    """Raises CommandError when nft cannot list (the tables' state is then unknown)."""
    out = ObservedFilters()
    for row in _rows(json_of(runner, in_netns(["nft", "-j", "list", "chains"], netns)), "chain"):
        out.tables.add((row["family"], row["table"]))  # a table without chains is as good as absent
        if _ours(row):
            out.chains.add((row["family"], row["name"]))
    if not out.skeleton:
        return out  # rebuilt as a whole: what it held does not matter
    for container in CONTAINERS:
        out.elements[container.key] = _elements(runner, netns, container.key, container.is_map)
    for row in _rows(json_of(runner, in_netns(["nft", "-j", "-t", "list", "sets"], netns)), "set"):
        key = (row["family"], row["name"])
        if _ours(row) and ON_DEMAND_SET.match(row["name"]):
            out.sets.add(key)
            if not CONTENT_NAMED_SET.match(row["name"]):  # a rule set's name says what it holds
                out.elements[key] = _elements(runner, netns, key, False)
    return out


def _elements(runner: Runner, netns: str | None, key: tuple[str, str], is_map: bool) -> dict[str, str]:
    kind = "map" if is_map else "set"
    listed = json_of(runner, in_netns(["nft", "-j", "list", kind, key[0], TABLE, key[1]], netns))
    out = {}
    for row in _rows(listed, kind):
        for elem in row.get("elem", []):
            if is_map:
                out[element_text(elem[0])] = element_text(elem[1])
            elif key == ND_TARGETS:
                out[nd_target_text(elem)] = ""
            else:
                out[element_text(elem)] = ""
    return out


def nd_target_text(elem: dict[str, Any]) -> str:
    """An `nd_targets` element: its address is a raw 128-bit field, which nft's JSON gives as a number
    when it is small and as a hex string when not."""
    *named, raw = elem["concat"]
    return " . ".join([element_text(v) for v in named] + [raw128_text(raw)])


def raw128_text(value: Any) -> str:
    if isinstance(value, dict):
        return "-".join(raw128_text(v) for v in value["range"])
    return hex128(int(value, 16) if isinstance(value, str) else value)


ND_TARGETS = (BRIDGE, "nd_targets")


def element_text(value: Any) -> str:
    """An element (or a map value) as kvnet writes it, from nft's JSON."""
    if isinstance(value, dict):
        if "concat" in value:
            return " . ".join(element_text(v) for v in value["concat"])
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "range" in value:
            low, high = (ipaddress.ip_address(v) for v in value["range"])
            nets = list(ipaddress.summarize_address_range(low, high))  # type: ignore[type-var]
            return str(nets[0]) if len(nets) == 1 else f"{low}-{high}"
        for verdict in ("jump", "goto"):
            if verdict in value:
                return f"{verdict} {value[verdict]['target']}"
        return next(iter(value))  # {"accept": null}
    if isinstance(value, bool) or not isinstance(value, str):
        return str(value)
    if MAC.match(value):
        return value.lower()
    try:
        return ipaddress.ip_network(value).with_prefixlen
    except ValueError:
        return f'"{value}"'  # an interface name


def _rows(data: Any, kind: str) -> Iterable[dict[str, Any]]:
    return (item[kind] for item in (data or {}).get("nftables", []) if kind in item)


def _ours(row: dict[str, Any]) -> bool:
    return row.get("table") == TABLE and row.get("family") in FAMILIES


@dataclass
class FilterChanges:
    rebuild: bool = False
    drop_legacy: bool = False
    add_sets: list[tuple[Container, frozenset[str]]] = field(default_factory=list)
    add_chains: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # family, name, rules
    del_elements: list[tuple[str, str, str]] = field(default_factory=list)  # family, container, key
    add_elements: list[tuple[str, str, str, str]] = field(default_factory=list)  # family, container, key, value
    del_chains: list[tuple[str, str]] = field(default_factory=list)
    del_sets: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)

    def devices(self) -> set[str]:
        """The devices whose elements this changes (their ports wait for it)."""
        keys = [key for _, name, key, _ in self.add_elements if name in ("from_port", "sender", "macs", "v4", "v6")]
        keys += [key for _, name, key in self.del_elements if name in ("from_port", "sender")]
        return {key.split(" . ")[0].strip('"') for key in keys}

    def counts(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        added = {"filter_chain": len(self.add_chains), "filter_set": len(self.add_sets),
                 "filter_element": len(self.add_elements)}
        removed = {"filter_chain": len(self.del_chains), "filter_set": len(self.del_sets),
                   "filter_element": len(self.del_elements)}
        return added, {"filter_table": int(self.rebuild)}, removed


def diff(want: DesiredFilters, have: ObservedFilters) -> FilterChanges:
    changes = FilterChanges(drop_legacy=LEGACY_TABLE in have.tables)
    if not have.skeleton:
        have = ObservedFilters()  # rebuilt from nothing, in the same transaction
        changes.rebuild = True
    for key, container in sorted(want.sets.items()):
        if key not in have.sets:
            changes.add_sets.append((container, frozenset(want.elements.get(key, {}))))
    changes.add_chains = [(family, name, rules) for (family, name), rules in sorted(want.chains.items())
                          if (family, name) not in have.chains]
    new_sets = {c.key for c, _ in changes.add_sets}
    for key, elements in sorted(want.elements.items()):
        if key in new_sets or (CONTENT_NAMED_SET.match(key[1]) and key in have.sets):
            continue  # written with its set / named after what it holds
        current = have.elements.get(key, {})
        for name, value in sorted(elements.items()):
            if current.get(name) != value:
                if name in current:
                    changes.del_elements.append((*key, name))
                changes.add_elements.append((*key, name, value))
        changes.del_elements += [(*key, name) for name in sorted(set(current) - set(elements))]
    changes.del_chains = sorted(c for c in have.chains - set(want.chains) if RULE_CHAIN.match(c[1]))
    changes.del_sets = sorted(s for s in have.sets - set(want.sets) if ON_DEMAND_SET.match(s[1]))
    return changes


def script(changes: FilterChanges) -> str:
    """One nft transaction, in the order that never leaves a reference dangling."""
    lines: list[str] = []
    if changes.drop_legacy:
        lines += [f"add table {' '.join(LEGACY_TABLE)}", f"delete table {' '.join(LEGACY_TABLE)}"]
    if changes.rebuild:
        lines += _skeleton()
    for container, members in changes.add_sets:
        lines.append(f"add set {container.family} {TABLE} {container.name} {{ {container.declaration} }}")
        lines += [f"add element {container.family} {TABLE} {container.name} {{ {m} }}" for m in sorted(members)]
    for family, name, rules in changes.add_chains:
        lines.append(f"add chain {family} {TABLE} {name}")
        lines += [f"add rule {family} {TABLE} {name} {rule}" for rule in rules]
    lines += [f"delete element {family} {TABLE} {name} {{ {key} }}" for family, name, key in changes.del_elements]
    lines += [f"add element {family} {TABLE} {name} {{ {key}{f' : {value}' if value else ''} }}"
              for family, name, key, value in changes.add_elements]
    lines += [f"delete chain {family} {TABLE} {name}" for family, name in changes.del_chains]
    lines += [f"delete set {family} {TABLE} {name}" for family, name in changes.del_sets]
    return "\n".join(lines) + "\n"


def _skeleton() -> list[str]:
    """Both tables from nothing: whatever they held is gone with them, in the same transaction."""
    lines = []
    for family in FAMILIES:
        lines += [f"add table {family} {TABLE}", f"delete table {family} {TABLE}", f"add table {family} {TABLE}",
                  f"add chain {family} {TABLE} {SKELETON}"]
        lines += [f"add {'map' if c.is_map else 'set'} {family} {TABLE} {c.name} {{ {c.declaration} }}"
                  for c in CONTAINERS if c.family == family]
    for (family, name), rules in FIXED_CHAINS.items():
        hook = HOOKED.get((family, name))
        lines.append(f"add chain {family} {TABLE} {name}" + (f" {{ {hook} }}" if hook else ""))
        lines += [f"add rule {family} {TABLE} {name} {rule}" for rule in rules]
    return lines
