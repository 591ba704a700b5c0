"""observe_routers(prefix) -> what the kernel has in kvnet's router namespaces.

A namespace that is listed but cannot be read is *unknown* (returned apart, with the error): the diff
leaves it alone -- it is neither recreated (a flush of everything routed through it) nor deleted.
A listing of the namespaces that fails raises `CommandError`: then every namespace is unknown.
"""

from __future__ import annotations

from typing import Any

from kvnet.dataplane.linux import nft_table
from kvnet.dataplane.linux.router_state import NFT_TABLE, ROUTE_PROTO, LegLink, RouterNs, router_ns_prefix
from kvnet.plan import NeighSpec, RouteSpec, RuleSpec
from kvnet.sys import netns
from kvnet.sys.cmd import CommandError
from kvnet.sys.runner import SYSTEM, Runner, json_of

MAIN_TABLE = 254


def router_namespaces(host_netns: str | None, runner: Runner = SYSTEM) -> list[str]:
    """The real kernel's named namespaces are files (read directly: `ip netns list` would also ask
    each one for its id); any other runner is asked."""
    prefix = router_ns_prefix(host_netns)
    if runner is SYSTEM:
        return netns.list_with_prefix(prefix)
    return sorted(row["name"] for row in json_of(runner, ["ip", "-j", "netns", "list"])
                  if row.get("name", "").startswith(prefix))


def observe_routers(host_netns: str | None, runner: Runner = SYSTEM) -> tuple[dict[str, RouterNs], dict[str, str]]:
    """({namespace: what it has}, {namespace: why it could not be read})."""
    out, unknown = {}, {}
    for name in router_namespaces(host_netns, runner):
        try:
            out[name] = observe_router(name, runner)
        except CommandError as exc:
            unknown[name] = str(exc)
    return out, unknown


def observe_router(name: str, runner: Runner = SYSTEM) -> RouterNs:
    def run_json(argv: list[str]) -> Any:
        return json_of(runner, argv)

    ns = RouterNs(name=name)
    for raw in run_json(["ip", "-n", name, "-j", "addr", "show"]):
        if raw["ifname"] == "lo":
            continue
        ns.links[raw["ifname"]] = LegLink(raw["ifname"], raw.get("address", ""), raw.get("mtu", 0),
                                          up="UP" in raw.get("flags", ()))
        ns.addresses.update((raw["ifname"], f"{a['local']}/{a['prefixlen']}")
                            for a in raw.get("addr_info", []) if a.get("family") == "inet")
    ns.routes = {parse_route(r) for r in run_json(["ip", "-n", name, "-j", "route", "show", "table", "all",
                                                   "proto", str(ROUTE_PROTO)])}
    ns.rules = {parse_rule(r) for r in run_json(["ip", "-n", name, "-j", "rule", "show"])}
    ns.neighbours = {NeighSpec(r["dev"], r["dst"], r["lladdr"])
                     for r in run_json(["ip", "-n", name, "-j", "neigh", "show", "nud", "permanent"]) if "lladdr" in r}
    ns.nft_digest = nft_table.observe_digest("ip", NFT_TABLE, name, runner)
    return ns


def parse_route(raw: dict[str, Any]) -> RouteSpec:
    table = raw.get("table", "main")
    return RouteSpec(table=MAIN_TABLE if table == "main" else int(table), dst=raw["dst"], dev=raw.get("dev", ""),
                     via=raw.get("gateway"), onlink="onlink" in raw.get("flags", ()))


def parse_rule(raw: dict[str, Any]) -> RuleSpec:
    src = raw.get("src")
    if src == "all":
        src = None
    elif src and "srclen" in raw:
        src = f"{src}/{raw['srclen']}"
    mark = raw.get("fwmark")
    return RuleSpec(priority=int(raw["priority"]), table=str(raw.get("table", "")), src=src,
                    fwmark=int(mark, 16) if mark else None)
