"""The fake kernel's model of nftables tables kvnet reconciles object by object (the port filters), as
test support: the commands `kvnet.dataplane.linux.filter_objects` writes and reads, a transaction that
applies whole or not at all, and listings in nft's JSON (`element_text` reads them back).

Tables kvnet replaces as a whole (router NAT) stay text in `FakeNs.nft`; these are structured.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ADD_CHAIN = re.compile(r"^add chain (\w+) (\S+) (\S+)(?: \{ (.*) \})?$")
ADD_RULE = re.compile(r"^add rule (\w+) (\S+) (\S+) (.*)$")
ADD_CONTAINER = re.compile(r"^add (set|map) (\w+) (\S+) (\S+) \{ (.*) \}$")
ELEMENT = re.compile(r"^(add|delete) element (\w+) (\S+) (\S+) \{ (.*) \}$")
DELETE = re.compile(r"^delete (chain|set|table) (\w+) (\S+)(?: (\S+))?$")
ADD_TABLE = re.compile(r"^add table (\w+) (\S+)$")


class NftError(Exception):
    pass


@dataclass
class FakeTable:
    chains: dict[str, list[str]] = field(default_factory=dict)
    hooks: dict[str, str] = field(default_factory=dict)
    containers: dict[str, tuple[bool, dict[str, str]]] = field(default_factory=dict)  # name -> (is_map, elements)


@dataclass
class FakeNftTables:
    tables: dict[tuple[str, str], FakeTable] = field(default_factory=dict)

    def apply(self, script: str, fault: Callable[[str], str | None]) -> None:
        """All of `script` or nothing (nft's transaction); raises NftError with nft-like text."""
        work = copy.deepcopy(self.tables)
        for line in script.splitlines():
            if not line.strip():
                continue
            message = fault(line)
            if message is not None:
                raise NftError(f"Error: {message}\n{line}")
            _apply_line(work, line)
        self.tables = work

    def listing(self, args: list[str]) -> str | None:
        """The JSON of a listing command, or None when it is not one of these tables'."""
        flags = [a for a in args if a.startswith("-")]
        words = [a for a in args if not a.startswith("-")]
        if "-j" not in flags or not words or words[0] != "list":
            return None
        rows: list[dict[str, Any]] = []
        if words[1:] == ["chains"]:
            rows = [{"chain": {"family": f, "table": t, "name": c}} for (f, t), table in self.tables.items()
                    for c in table.chains]
        elif words[1:] == ["sets"]:
            rows = [{"set": self._container_json(f, t, n, table, terse="-t" in flags)}
                    for (f, t), table in self.tables.items() for n, (is_map, _) in table.containers.items()
                    if not is_map]
        elif words[1] in ("set", "map") and len(words) == 5:
            table = self.tables.get((words[2], words[3]))
            if table is None or words[4] not in table.containers:
                raise NftError(f"Error: No such file or directory\nlist {words[1]} {' '.join(words[2:])}")
            rows = [{words[1]: self._container_json(words[2], words[3], words[4], table, terse=False)}]
        else:
            return None
        return json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}, *rows]})

    @staticmethod
    def _container_json(family: str, table_name: str, name: str, table: FakeTable, *, terse: bool) -> dict[str, Any]:
        is_map, elements = table.containers[name]
        out: dict[str, Any] = {"family": family, "table": table_name, "name": name}
        if elements and not terse:
            out["elem"] = [[_json_value(k), _json_value(v)] for k, v in elements.items()] if is_map \
                else [_json_value(k) for k in elements]
        return out


def _apply_line(tables: dict[tuple[str, str], FakeTable], line: str) -> None:
    if match := ADD_TABLE.match(line):
        tables.setdefault((match[1], match[2]), FakeTable())
    elif match := DELETE.match(line):
        kind, family, table_name, name = match[1], match[2], match[3], match[4]
        if kind == "table":
            tables.pop((family, table_name), None) if (family, table_name) in tables else _absent(line)
            return
        table = _table(tables, family, table_name, line)
        store = table.chains if kind == "chain" else table.containers
        if name not in store:
            _absent(line)
        if kind == "chain" and any(f"jump {name}" in v or f"goto {name}" in v for _, els in
                                   table.containers.values() for v in els.values()):
            raise NftError(f"Error: Could not process rule: Resource busy\n{line}")
        del store[name]
        table.hooks.pop(name, None)
    elif match := ADD_CHAIN.match(line):
        table = _table(tables, match[1], match[2], line)
        table.chains.setdefault(match[3], [])
        if match[4]:
            table.hooks[match[3]] = match[4]
    elif match := ADD_RULE.match(line):
        table = _table(tables, match[1], match[2], line)
        if match[3] not in table.chains:
            _absent(line)
        table.chains[match[3]].append(match[4])
    elif match := ADD_CONTAINER.match(line):
        table = _table(tables, match[2], match[3], line)
        table.containers.setdefault(match[4], (match[1] == "map", {}))
    elif match := ELEMENT.match(line):
        table = _table(tables, match[2], match[3], line)
        if match[4] not in table.containers:
            _absent(line)
        is_map, elements = table.containers[match[4]]
        key, _, value = match[5].partition(" : ")
        if match[1] == "add":
            if key in elements and elements[key] != value:
                raise NftError(f"Error: Could not process rule: File exists\n{line}")
            elements[key] = value if is_map else ""
        elif key in elements:
            del elements[key]
        else:
            _absent(line)
    else:
        raise NftError(f"Error: syntax error (fake kernel: unknown nft line)\n{line}")


def _table(tables: dict[tuple[str, str], FakeTable], family: str, name: str, line: str) -> FakeTable:
    if (family, name) not in tables:
        _absent(line)
    return tables[(family, name)]


def _absent(line: str) -> None:
    raise NftError(f"Error: No such file or directory\n{line}")


def _json_value(text: str) -> Any:
    """kvnet's element text as nft's JSON has it."""
    if " . " in text:
        return {"concat": [_json_value(part) for part in text.split(" . ")]}
    for verdict in ("jump", "goto"):
        if text.startswith(f"{verdict} "):
            return {verdict: {"target": text[len(verdict) + 1:]}}
    if text in ("accept", "drop"):
        return {text: None}
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if text.isdigit():
        return int(text)
    if text.startswith("0x"):  # a raw field's integer (or a range): a number if it fits 64 bits, as nft does
        values = [int(v, 16) for v in text.split("-")]
        shown = [v if v < 2**64 else hex(v) for v in values]
        return shown[0] if len(shown) == 1 else {"range": shown}
    if "/" in text:
        net = ipaddress.ip_network(text)
        if net.num_addresses == 1:
            return str(net.network_address)
        return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
    return text
