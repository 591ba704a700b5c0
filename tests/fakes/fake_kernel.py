"""A fake kernel for the Linux driver, with fault flags (test support; never used by kvnet itself).

`FakeKernel` is a `kvnet.sys.runner.Runner`: it interprets the commands the Linux driver issues --
`ip -j -d link show`, `bridge -j fdb show`, `ip -j neigh show`, `ip/bridge -force -batch -` lines,
`ip netns list/add/del`, the router-namespace reads (`addr`, `route`, `rule`, `neigh`), `nft -f -` and
`nft list table` for the tables kvnet owns -- holds the resulting state per namespace, and answers
like iproute2 does, including its error reporting (`Command failed -:<n>`, and `ip neigh` ending the
whole batch when an entry is refused). `fail(pattern)` makes the next matching command or batch line
fail (once, or `times` times, or always with times=None). `state()` is a comparable snapshot.

Keep it honest: tests/integration/test_fake_kernel_honesty.py runs the same plans through it and
through a real namespace and compares what `observe` reads back.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fake_nft import FakeNftTables, NftError

NFT_ABSENT = "Error: No such file or directory\nlist table\n"
_NFT_DELETE = re.compile(r"^delete table (\w+) (\S+)$", re.MULTILINE)


class Refused(Exception):
    """The kernel (or iproute2) refuses one command; `exits`: iproute2 ends the whole batch."""

    def __init__(self, message: str, exits: bool = False) -> None:
        super().__init__(message)
        self.exits = exits


@dataclass
class FakeLink:
    name: str
    kind: str
    mtu: int = 1500
    up: bool = False
    alias: str | None = None
    master: str | None = None
    address: str = ""
    vxlan: dict[str, Any] | None = None
    learning: bool = True
    neigh_suppress: bool = False
    peer: tuple[str, str] | None = None  # a veth's other end: (namespace, name)
    fdb_max_learned: int = 0  # a bridge's cap on learned entries (0: none)

    def detach(self) -> None:
        """No bridge port any more: its port flags go (a new port starts with the defaults)."""
        self.master, self.learning, self.neigh_suppress = None, True, False


@dataclass
class FakeNs:
    links: dict[str, FakeLink] = field(default_factory=dict)
    fdb: set[tuple[str, str, str]] = field(default_factory=set)  # (dev, mac, dst): vxlan `self permanent`
    pins: set[tuple[str, str]] = field(default_factory=set)  # (dev, mac): `master static`
    neigh: dict[tuple[str, str], str] = field(default_factory=dict)  # (dev, ip) -> mac, permanent
    addrs: set[tuple[str, str]] = field(default_factory=set)  # (dev, ip/len)
    routes: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)  # (table, dst) -> route
    rules: set[tuple[int, str]] = field(default_factory=lambda: {(0, "local"), (32766, "main"), (32767, "default")})
    nft: dict[tuple[str, str], str] = field(default_factory=dict)  # (family, name) -> the table's text
    filters: FakeNftTables = field(default_factory=FakeNftTables)  # tables reconciled object by object
    conntrack: list[tuple[int, str]] = field(default_factory=list)  # (zone, `conntrack -L` line)

    def link(self, name: str) -> FakeLink:
        if name not in self.links:
            raise Refused(f'Cannot find device "{name}"')
        return self.links[name]

    def detach(self, link: FakeLink) -> None:
        """Off its bridge: its `master` entries go with the bridge port."""
        link.detach()
        self.pins = {p for p in self.pins if p[0] != link.name}

    def drop_link(self, name: str) -> None:
        del self.links[name]
        for link in self.links.values():
            if link.master == name:
                self.detach(link)
        self.fdb = {e for e in self.fdb if e[0] != name}
        self.pins = {p for p in self.pins if p[0] != name}
        self.neigh = {k: v for k, v in self.neigh.items() if k[0] != name}
        self.addrs = {a for a in self.addrs if a[0] != name}
        self.routes = {k: r for k, r in self.routes.items() if r["dev"] != name}


@dataclass
class Fault:
    pattern: re.Pattern[str]
    times: int | None
    message: str


class FakeKernel:
    ROOT = ""  # the namespace plain commands (no -n, no netns exec) act on

    def __init__(self) -> None:
        self.ns: dict[str, FakeNs] = {self.ROOT: FakeNs()}
        self.faults: list[Fault] = []
        self.log: list[str] = []  # every command and batch line, in order

    # -- set-up and fault flags ----------------------------------------------------------------
    def add_netns(self, name: str) -> FakeNs:
        self.ns[name] = FakeNs(links={"lo": FakeLink("lo", "loopback", 65536, True)})
        return self.ns[name]

    def add_device(self, ns: str, name: str, mtu: int = 1500, kind: str = "veth", up: bool = True) -> None:
        """A device kvnet does not create (a VM tap, a physnet NIC)."""
        self.ns[ns].links[name] = FakeLink(name, kind, mtu, up)

    def fail(self, pattern: str, *, times: int | None = 1,
             message: str = "RTNETLINK answers: Operation not permitted") -> None:
        """The next `times` commands or batch lines matching `pattern` (a regex) fail with `message`."""
        self.faults.append(Fault(re.compile(pattern), times, message))

    def _fault(self, text: str) -> str | None:
        for fault in self.faults:
            if fault.times != 0 and fault.pattern.search(text):
                if fault.times is not None:
                    fault.times -= 1
                return fault.message
        return None

    def state(self) -> dict[str, Any]:
        """Everything kvnet could see, per namespace, comparable with ==."""
        return {name: {"links": {n: copy.copy(vars(link)) for n, link in ns.links.items()},
                       "fdb": set(ns.fdb), "pins": set(ns.pins), "neigh": dict(ns.neigh), "addrs": set(ns.addrs),
                       "routes": copy.deepcopy(ns.routes), "rules": set(ns.rules), "nft": dict(ns.nft),
                       "nft_objects": copy.deepcopy(ns.filters.tables)}
                for name, ns in self.ns.items()}

    # -- kvnet.sys.bridge_netlink.BridgeLimits (fault texts: "netlink read <ns>", "netlink set <bridge> <cap>")
    def read(self, netns: str | None) -> dict[str, tuple[int, int | None]]:
        message = self._fault(f"netlink read {netns}")
        if message is not None:
            raise OSError(1, message)
        return {n: (0, link.fdb_max_learned) for n, link in self.ns[netns or self.ROOT].links.items()
                if link.kind == "bridge"}

    def set_cap(self, netns: str | None, bridge: str, cap: int) -> str | None:
        message = self._fault(f"netlink set {bridge} {cap}")
        links = self.ns[netns or self.ROOT].links
        if message is None and bridge not in links:
            message = "No such device"
        if message is not None:
            return f"setting fdb_max_learned on {bridge}: {message}"
        links[bridge].fdb_max_learned = cap
        return None

    # -- the Runner -------------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        text = " ".join(argv)
        self.log.append(text)
        message = self._fault(text)
        if message is not None:
            return subprocess.CompletedProcess(argv, 1, "", message + "\n")
        ns = self.ROOT
        if argv[:3] == ["ip", "netns", "exec"]:
            ns, argv = argv[3], argv[4:]
        elif len(argv) > 2 and argv[0] in ("ip", "bridge") and argv[1] == "-n":
            ns, argv = argv[2], [argv[0], *argv[3:]]
        if ns not in self.ns:
            return subprocess.CompletedProcess(argv, 255, "", f'Cannot open network namespace "{ns}": '
                                                               "No such file or directory\n")
        try:
            if argv[-3:] == ["-force", "-batch", "-"]:
                return self._batch(argv, ns, input or "")
            return subprocess.CompletedProcess(argv, 0, self._command(argv, ns, input or ""), "")
        except Refused as exc:
            return subprocess.CompletedProcess(argv, 1, "", f"{exc}\n")

    def _batch(self, argv: list[str], ns: str, text: str) -> subprocess.CompletedProcess[str]:
        errors: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            self.log.append(line)
            words = shlex.split(line)
            try:
                message = self._fault(line)
                if message is not None:
                    raise Refused(message, exits=words[0] == "neigh")
                self._line(argv[0], words, ns)
            except Refused as exc:
                errors.append(str(exc))
                if exc.exits:
                    return subprocess.CompletedProcess(argv, 2, "", "\n".join(errors) + "\n")
                errors.append(f"Command failed -:{number}")
        return subprocess.CompletedProcess(argv, 1 if errors else 0, "", "".join(e + "\n" for e in errors))

    def _command(self, argv: list[str], ns_name: str, stdin: str) -> str:
        ns = self.ns[ns_name]
        tool, args = argv[0], argv[1:]
        if tool == "nft":
            return self._nft(args, ns, stdin)
        if tool == "sysctl":  # br_netfilter on, as here; writes go nowhere
            return "1\n1\n" if args[:1] == ["-n"] else ""
        if tool == "modprobe":
            return ""
        if tool == "conntrack":
            return self._conntrack(args, ns)
        if args[:2] == ["netns", "list"] or args[:3] == ["-j", "netns", "list"]:
            return json.dumps([{"name": n} for n in sorted(self.ns) if n])
        if args[:2] == ["netns", "identify"]:
            return ""
        if args[:2] == ["netns", "add"]:
            if args[2] in self.ns:
                raise Refused(f'Cannot create namespace file "/run/netns/{args[2]}": File exists')
            self.add_netns(args[2])
            return ""
        if args[:2] == ["netns", "del"]:
            gone = self.ns.pop(args[2], None)
            if gone is None:
                raise Refused(f'Cannot remove namespace file "/run/netns/{args[2]}": No such file or directory')
            for link in gone.links.values():  # a veth dies whole: its other end goes too
                if link.peer and link.peer[0] in self.ns and link.peer[1] in self.ns[link.peer[0]].links:
                    self.ns[link.peer[0]].drop_link(link.peer[1])
            return ""
        if args[:4] == ["-j", "-d", "link", "show"] or args[:3] == ["-j", "link", "show"]:
            return json.dumps([self._link_json(link) for link in ns.links.values()])
        if tool == "bridge" and args[:3] == ["-j", "fdb", "show"]:
            return json.dumps(self._fdb_json(ns))
        if args[:3] == ["-j", "neigh", "show"]:
            return json.dumps([{"dst": ip, "dev": dev, "lladdr": mac, "state": ["PERMANENT"]}
                               for (dev, ip), mac in sorted(ns.neigh.items())])
        if args[:3] == ["-j", "addr", "show"]:
            return json.dumps([self._addr_json(link, ns) for link in ns.links.values()])
        if args[:3] == ["-j", "route", "show"]:
            return json.dumps([self._route_json(table, route) for (table, _), route in sorted(ns.routes.items())])
        if args[:3] == ["-j", "rule", "show"]:
            return json.dumps([{"priority": p, "src": "all", "table": t} for p, t in sorted(ns.rules)])
        if args[:4] == ["link", "set", "lo", "up"]:
            ns.link("lo").up = True
            return ""
        raise Refused(f"fake kernel: unknown command {' '.join(argv)}")

    # -- listings ----------------------------------------------------------------------------------
    @staticmethod
    def _link_json(link: FakeLink) -> dict[str, Any]:
        raw: dict[str, Any] = {"ifname": link.name, "mtu": link.mtu, "flags": ["BROADCAST", "MULTICAST"]
                               + (["UP"] if link.up else []), "address": link.address}
        if link.alias:
            raw["ifalias"] = link.alias
        if link.master:
            raw["master"] = link.master
        info: dict[str, Any] = {"info_kind": link.kind} if link.kind in ("bridge", "vxlan", "veth") else {}
        if link.vxlan is not None:
            info["info_data"] = dict(link.vxlan)
        if link.master:
            info["info_slave_kind"] = "bridge"
            info["info_slave_data"] = {"learning": link.learning, "neigh_suppress": link.neigh_suppress}
        if info:
            raw["linkinfo"] = info
        return raw

    @staticmethod
    def _fdb_json(ns: FakeNs) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{"mac": mac, "ifname": dev, "dst": dst, "flags": ["self"], "state": "permanent"}
                                      for dev, mac, dst in sorted(ns.fdb)]
        rows += [{"mac": mac, "ifname": dev, "master": ns.links[dev].master, "state": "static"}
                 for dev, mac in sorted(ns.pins)]
        return rows

    @staticmethod
    def _addr_json(link: FakeLink, ns: FakeNs) -> dict[str, Any]:
        addrs = [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                 for dev, a in sorted(ns.addrs) if dev == link.name]
        return {"ifname": link.name, "address": link.address, "mtu": link.mtu,
                "flags": ["UP"] if link.up else [], "addr_info": addrs}

    @staticmethod
    def _route_json(table: int, route: dict[str, Any]) -> dict[str, Any]:
        raw = {"dst": route["dst"], "dev": route["dev"], "flags": ["onlink"] if route["onlink"] else []}
        if route["via"]:
            raw["gateway"] = route["via"]
        if table != 254:
            raw["table"] = str(table)
        return raw

    # -- conntrack --------------------------------------------------------------------------------------
    @staticmethod
    def _conntrack(args: list[str], ns: FakeNs) -> str:
        """`-L -w Z -f F` lists the zone's entries; `-D -w Z ... -s S -d D` deletes the entries opened
        from S to D in that zone (the sweep names them by their whole tuple; S and D suffice here)."""
        zone = int(args[args.index("-w") + 1])
        if args[0] == "-L":
            return "".join(line + "\n" for z, line in ns.conntrack if z == zone)
        src, dst = args[args.index("-s") + 1], args[args.index("-d") + 1]
        kept = [(z, line) for z, line in ns.conntrack if not (z == zone and f"src={src} dst={dst} " in line)]
        if len(kept) == len(ns.conntrack):
            raise Refused("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.")
        ns.conntrack = kept
        return ""

    # -- nft ----------------------------------------------------------------------------------------
    def _nft(self, args: list[str], ns: FakeNs, script: str) -> str:
        if args == ["-f", "-"] and script.lstrip().startswith(("add ", "delete ")):
            # the port filters' transactions, object by object (fake_nft); a `delete table` there may
            # also name a table kept as text (the retired netdev table of gateway redirects)
            try:
                ns.filters.apply(script, self._fault)
            except NftError as exc:
                raise Refused(str(exc)) from None
            for family, name in _NFT_DELETE.findall(script):
                ns.nft.pop((family, name), None)
            return ""
        if args[:3] == ["-j", "list", "chains"]:
            listed = json.loads(ns.filters.listing(args) or '{"nftables": []}')
            listed["nftables"] += [{"chain": {"family": family, "table": name, "name": chain}}
                                   for (family, name), text in ns.nft.items()
                                   for chain in re.findall(r"^\s*chain (\S+) \{", text, re.MULTILINE)]
            return json.dumps(listed)
        try:
            listing = ns.filters.listing(args)
        except NftError as exc:
            raise Refused(str(exc)) from None
        if listing is not None:
            return listing
        if args[:2] == ["list", "table"]:
            text = ns.nft.get((args[2], args[3]))
            if text is None:
                raise Refused(NFT_ABSENT.strip())
            return text
        if args == ["-f", "-"]:
            # kvnet's scripts: "table F N {}", "delete table F N", then the table with its comment, if any
            for family, name in _NFT_DELETE.findall(script):
                ns.nft.pop((family, name), None)
            for block in re.findall(r"^table \w+ \S+ \{\n.*?^\}$", script, re.MULTILINE | re.DOTALL):
                family, name = block.split()[1:3]
                ns.nft[(family, name)] = block
            return ""
        raise Refused(f"fake kernel: unknown nft command {args}")

    # -- batch lines ----------------------------------------------------------------------------------
    def _line(self, tool: str, w: list[str], ns_name: str) -> None:
        ns = self.ns[ns_name]
        if tool == "bridge":
            return self._fdb_line(w, ns)
        if w[0] == "link":
            return self._link_line(w, ns_name)
        if w[0] == "neigh":
            return self._neigh_line(w, ns)
        if w[0] == "addr":
            addr, dev = w[2], w[4]
            ns.link(dev)
            if w[1] == "add":
                if (dev, addr) in ns.addrs:
                    raise Refused("RTNETLINK answers: File exists")
                ns.addrs.add((dev, addr))
            else:
                ns.addrs.discard((dev, addr))
            return None
        if w[0] == "route":
            return self._route_line(w, ns)
        if w[0] == "rule":
            rule = (int(w[3]), w[w.index("lookup") + 1])
            (ns.rules.add if w[1] == "add" else ns.rules.discard)(rule)
            return None
        raise Refused(f'Object "{w[0]}" is unknown, try "ip help".', exits=True)  # iproute2 stops there too

    def _link_line(self, w: list[str], ns_name: str) -> None:
        ns = self.ns[ns_name]
        if w[1] == "add":
            self._link_add(w, ns_name)
        elif w[1] == "show":
            if w[3] not in ns.links:
                raise Refused(f'Device "{w[3]}" does not exist.')
        elif w[1] == "del":
            link = ns.link(w[3])
            ns.drop_link(w[3])
            if link.peer and link.peer[0] in self.ns and link.peer[1] in self.ns[link.peer[0]].links:
                self.ns[link.peer[0]].drop_link(link.peer[1])
        elif w[1] == "set":
            link = ns.link(w[3])
            rest = w[4:]
            if rest[:2] == ["type", "bridge_slave"]:
                if link.master is None:
                    raise Refused("RTNETLINK answers: Operation not supported")
                opts = dict(zip(rest[2::2], rest[3::2], strict=True))
                link.learning = opts.get("learning", "on" if link.learning else "off") == "on"
                link.neigh_suppress = opts.get("neigh_suppress", "on" if link.neigh_suppress else "off") == "on"
                return
            i = 0
            while i < len(rest):
                word = rest[i]
                if word in ("up", "down"):
                    link.up = word == "up"
                elif word == "nomaster":
                    ns.detach(link)
                elif word in ("alias", "master", "mtu", "address"):
                    value = rest[i + 1]
                    i += 1
                    if word == "master":
                        if ns.link(value).kind != "bridge":
                            raise Refused("RTNETLINK answers: Operation not supported")
                        if link.master != value:  # a new bridge port: defaults, no `master` entries
                            ns.detach(link)
                        link.master = value
                    elif word == "mtu":
                        link.mtu = int(value)
                    else:
                        setattr(link, word, value)
                i += 1

    def _link_add(self, w: list[str], ns_name: str) -> None:
        ns = self.ns[ns_name]
        name = w[3] if w[2] == "name" else w[2]
        if name in ns.links:
            raise Refused("RTNETLINK answers: File exists")
        kind = w[w.index("type") + 1]
        if kind == "veth":  # link add <dev> mtu N type veth peer name <leg> address <mac> mtu N netns <ns>
            peer = w[w.index("peer") + 2:]
            target = peer[peer.index("netns") + 1]
            if target not in self.ns:
                raise Refused(f'Invalid "netns" value "{target}"', exits=True)
            leg = peer[0]
            ns.links[name] = FakeLink(name, "veth", int(w[w.index("mtu") + 1]), peer=(target, leg))
            self.ns[target].links[leg] = FakeLink(leg, "veth", int(peer[peer.index("mtu") + 1]),
                                                  address=peer[peer.index("address") + 1], peer=(ns_name, name))
            return
        link = FakeLink(name, kind)
        if kind == "vxlan":
            opts = dict(zip(w[6::2], w[7::2], strict=False))
            link.vxlan = {"id": int(opts["id"]), "local": opts["local"], "port": int(opts["dstport"]),
                          "learning": "learning" in w, "proxy": "proxy" in w}
        ns.links[name] = link

    def _neigh_line(self, w: list[str], ns: FakeNs) -> None:
        ip, dev = w[2], w[w.index("dev") + 1]
        if dev not in ns.links:
            raise Refused(f'Cannot find device "{dev}"')
        if w[1] == "del":
            if (dev, ip) not in ns.neigh:
                raise Refused("RTNETLINK answers: No such file or directory", exits=True)
            del ns.neigh[(dev, ip)]
            return
        mac = w[w.index("lladdr") + 1]
        if len(mac.split(":")) != 6:
            raise Refused("Error: Invalid link address.", exits=True)
        ns.neigh[(dev, ip)] = mac

    def _route_line(self, w: list[str], ns: FakeNs) -> None:
        dst, table = w[2], int(w[w.index("table") + 1])
        if w[1] == "del":
            if ns.routes.pop((table, dst), None) is None:
                raise Refused("RTNETLINK answers: No such process")
            return
        dev = w[w.index("dev") + 1]
        ns.link(dev)
        via = w[w.index("via") + 1] if "via" in w else None
        ns.routes[(table, dst)] = {"dst": dst, "dev": dev, "via": via, "onlink": "onlink" in w}

    def _fdb_line(self, w: list[str], ns: FakeNs) -> None:
        verb, mac, dev = w[1], w[2], w[4]
        ns.link(dev)
        if "master" in w:  # a pin on a bridge port
            if verb == "del":
                if (dev, mac) not in ns.pins:
                    raise Refused("RTNETLINK answers: No such file or directory")
                ns.pins.discard((dev, mac))
            else:
                ns.pins.add((dev, mac))
            return
        dst = w[w.index("dst") + 1]
        if verb == "del":
            if (dev, mac, dst) not in ns.fdb:
                raise Refused("RTNETLINK answers: No such file or directory")
            ns.fdb.discard((dev, mac, dst))
            return
        if verb == "replace":
            ns.fdb = {e for e in ns.fdb if not (e[0] == dev and e[1] == mac)}
        ns.fdb.add((dev, mac, dst))
