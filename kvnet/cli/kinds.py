"""The table the per-kind commands are generated from: what each kind shows and what `create` takes.

A kind is described by its columns (for `list`) and its create options. An option maps one CLI flag
to one field of the request body (a dotted path for nested fields), with a converter for values that
need parsing or that name other resources (`--network blue-net` -> `network_id`).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvnet.client import Client
from kvnet.errors import InvalidInput

Converter = Callable[[Client, Any], Any]


@dataclass(frozen=True)
class Opt:
    flag: str                      # without dashes: "vnic-type"
    field: str                     # body field, dotted for nested: "external_gateway.network_id"
    type: type = str               # str, int or bool (a flag)
    help: str = ""
    convert: Converter | None = None
    multiple: bool = False
    required: bool = False

    @property
    def param(self) -> str:
        return self.flag.replace("-", "_")


class Names:
    """Turns ids into names for table cells, listing each referenced kind at most once."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._names: dict[str, dict[str, str]] = {}

    def __call__(self, kind: str, rid: str | None) -> str:
        if not rid:
            return ""
        if kind not in self._names:
            self._names[kind] = {r["id"]: r.get("name") or "" for r in self.client.list(kind)}
        return self._names[kind].get(rid) or short(rid)


Getter = Callable[[dict[str, Any], Names], Any]


@dataclass(frozen=True)
class Column:
    header: str
    get: Getter


@dataclass(frozen=True)
class KindSpec:
    kind: str                      # API kind: "networks"
    command: str                   # CLI group: "network"
    columns: list[Column]
    options: list[Opt] = field(default_factory=list)
    name_required: bool = False    # hosts: the name is the id


def short(rid: str) -> str:
    return rid[:8]


# -- columns ------------------------------------------------------------------------------------
def col(name: str, header: str | None = None) -> Column:
    return Column(header or name, lambda r, _: r.get(name))


def id_col() -> Column:
    return Column("id", lambda r, _: short(r["id"]))


def ref_col(name: str, kind: str, header: str) -> Column:
    return Column(header, lambda r, names: names(kind, r.get(name)))


def _last_seen(host: dict[str, Any], _: Names) -> str:
    """How long ago the host's agent last sent a heartbeat ("-" if never)."""
    seen = host.get("last_seen")
    return "-" if seen is None else f"{max(0.0, time.time() - seen):.0f}s ago"


def _port_ips(port: dict[str, Any], _: Names) -> list[str]:
    return [f["ip_address"] for f in port.get("fixed_ips", []) if f.get("ip_address")]


def _router_gateway(router: dict[str, Any], names: Names) -> str:
    gw = router.get("external_gateway")
    return f"{names('networks', gw['network_id'])} ({gw.get('ip_address') or '-'})" if gw else ""


def _router_interfaces(router: dict[str, Any], names: Names) -> list[str]:
    return [names("subnets", i["subnet_id"]) for i in router.get("interfaces", [])]


def _rules(group: dict[str, Any], _: Names) -> list[str]:
    return [format_rule(r) for r in group.get("rules", [])]


# -- converters ---------------------------------------------------------------------------------
def ref(kind: str) -> Converter:
    return lambda client, value: client.find(kind, value)["id"]


def refs(kind: str) -> Converter:
    return lambda client, values: [client.find(kind, v)["id"] for v in values]


def _pair(text: str, sep: str, what: str, flag: str) -> tuple[str, str]:
    left, found, right = text.partition(sep)
    if not found or not left or not right:
        raise InvalidInput(f"'{text}' is not {what}", field=flag)
    return left, right


def fixed_ips(client: Client, values: list[str]) -> list[dict[str, Any]]:
    """`--ip 10.0.0.5`, `--ip subnet=blue-subnet,10.0.0.5` or `--ip subnet=blue-subnet`."""
    result = []
    for text in values:
        entry: dict[str, Any] = {}
        for part in text.split(","):
            if part.startswith("subnet="):
                entry["subnet_id"] = client.find("subnets", part.removeprefix("subnet="))["id"]
            else:
                entry["ip_address"] = part
        result.append(entry)
    return result


def pools(_: Client, values: list[str]) -> list[dict[str, str]]:
    return [dict(zip(("start", "end"), _pair(v, "-", "a pool START-END", "pool"), strict=True)) for v in values]


def physnets(_: Client, values: list[str]) -> dict[str, str]:
    return dict(_pair(v, "=", "a physnet NAME=INTERFACE", "physnet") for v in values)


def parse_rule(text: str) -> dict[str, Any]:
    """`direction:protocol:ports:prefix`, e.g. `ingress:tcp:22:0.0.0.0/0`, `egress:any::`, `ingress:icmp`."""
    parts = [*text.split(":", 3), "", "", ""]
    direction, protocol, ports, prefix = parts[:4]
    rule: dict[str, Any] = {"direction": direction, "protocol": protocol or "any"}
    if ports:
        low, _, high = ports.partition("-")
        try:
            rule["port_range_min"], rule["port_range_max"] = int(low), int(high or low)
        except ValueError:
            raise InvalidInput(f"'{ports}' is not a port or port range in '{text}'", field="rule") from None
    if prefix:
        rule["remote_ip_prefix"] = prefix
        try:
            rule["ethertype"] = "IPv6" if ipaddress.ip_network(prefix, strict=False).version == 6 else "IPv4"
        except ValueError:
            raise InvalidInput(f"'{prefix}' is not an address prefix in '{text}'", field="rule") from None
    return rule


def format_rule(rule: dict[str, Any]) -> str:
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    ports = "" if low is None else (str(low) if low == high or high is None else f"{low}-{high}")
    remote = rule.get("remote_ip_prefix") or (f"group={short(rule['remote_group_id'])}"
                                              if rule.get("remote_group_id") else "")
    return ":".join([rule["direction"], rule.get("protocol") or "any", ports, remote])


def address_pairs(_: Client, values: list[str]) -> list[dict[str, str]]:
    """`10.0.0.100` or `10.0.0.0/28,fa:16:3e:00:00:01`."""
    return [{"ip_address": ip, **({"mac_address": mac} if mac else {})}
            for ip, _, mac in (v.partition(",") for v in values)]


def rules(_: Client, values: list[str]) -> list[dict[str, Any]]:
    return [parse_rule(v) for v in values]


def none(_: Client, __: Any) -> None:
    return None


# -- the table ----------------------------------------------------------------------------------
COMMON = [Opt("name", "name", help="a name, unique per kind, usable wherever an id is"),
          Opt("project", "project_id", help="project (tenant) that owns it")]

KINDS: list[KindSpec] = [
    KindSpec("hosts", "host",
             [col("name"), col("tunnel_ip", "tunnel ip"), col("roles"), col("physnets"), col("dataplane"),
              col("status"), Column("last seen", _last_seen)],
             [Opt("tunnel-ip", "tunnel_ip", required=True, help="underlay address where tunnels end"),
              Opt("role", "roles", multiple=True, help="compute and/or network (repeat)"),
              Opt("physnet", "physnets", multiple=True, convert=physnets, help="NAME=INTERFACE (repeat)"),
              Opt("dataplane", "dataplane", help="linux or ovs")], name_required=True),
    KindSpec("networks", "network",
             [col("name"), id_col(), col("project_id", "project"), col("network_type", "type"),
              col("segmentation_id", "segment"), col("physnet"), col("mtu"), col("external"), col("shared")],
             [Opt("type", "network_type", help="flat, vlan, vxlan, gre or local"),
              Opt("segment", "segmentation_id", int, help="VLAN id / VNI / GRE key (allocated if omitted)"),
              Opt("physnet", "physnet", help="physical network of a flat or vlan network"),
              Opt("mtu", "mtu", int, help="derived from the underlay if omitted"),
              Opt("external", "external", bool, help="floating IPs and router gateways come from it"),
              Opt("shared", "shared", bool, help="usable by every project")]),
    KindSpec("subnets", "subnet",
             [col("name"), id_col(), ref_col("network_id", "networks", "network"), col("cidr"),
              col("gateway_ip", "gateway"), Column("pools", lambda r, _: [
                  f"{p['start']}-{p['end']}" for p in r.get("allocation_pools", [])])],
             [Opt("network", "network_id", required=True, convert=ref("networks"), help="network id or name"),
              Opt("cidr", "cidr", required=True, help="e.g. 10.10.0.0/24"),
              Opt("gateway", "gateway_ip", help="gateway address (default: first host address)"),
              Opt("no-gateway", "gateway_ip", bool, convert=none, help="a subnet without a gateway"),
              Opt("pool", "allocation_pools", multiple=True, convert=pools, help="START-END (repeat)"),
              Opt("dns", "dns_nameservers", multiple=True, help="DNS server (repeat)")]),
    KindSpec("ports", "port",
             [col("name"), id_col(), ref_col("network_id", "networks", "network"), Column("ips", _port_ips),
              col("mac_address", "mac"), col("binding_host", "host"), col("status")],
             [Opt("network", "network_id", required=True, convert=ref("networks"), help="network id or name"),
              Opt("ip", "fixed_ips", multiple=True, convert=fixed_ips, help="IP, subnet=REF,IP or subnet=REF (repeat)"),
              Opt("mac", "mac_address", help="MAC address (allocated if omitted)"),
              Opt("host", "binding_host", help="host the port is bound to"),
              Opt("vnic-type", "vnic_type", help="normal, vhost, direct or passthrough"),
              Opt("device-id", "device_id", help="the VM that uses the port"),
              Opt("qos", "qos_policy_id", convert=ref("qospolicies"), help="QoS policy id or name"),
              Opt("sg", "security_group_ids", multiple=True, convert=refs("securitygroups"),
                  help="security group id or name (repeat; default: the project's `default` group)"),
              Opt("no-port-security", "port_security_enabled", bool, convert=lambda _, __: False,
                  help="no filtering at all (then no security group either)"),
              Opt("allowed-address-pair", "allowed_address_pairs", multiple=True, convert=address_pairs,
                  help="IP or CIDR[,MAC] the port may also send from (repeat)")]),
    KindSpec("routers", "router",
             [col("name"), id_col(), col("mode"), Column("gateway", _router_gateway),
              Column("interfaces", _router_interfaces), col("gateway_host", "gateway host")],
             [Opt("mode", "mode", help="centralized or distributed"),
              Opt("gateway", "external_gateway.network_id", convert=ref("networks"),
                  help="external network id or name")]),
    KindSpec("floatingips", "floatingip",
             [col("name"), id_col(), col("floating_ip_address", "floating ip"),
              ref_col("floating_network_id", "networks", "network"), ref_col("port_id", "ports", "port"),
              col("fixed_ip_address", "fixed ip"), col("status")],
             [Opt("network", "floating_network_id", required=True, convert=ref("networks"),
                  help="external network id or name"),
              Opt("port", "port_id", convert=ref("ports"), help="port id or name to map to"),
              Opt("ip", "floating_ip_address", help="address to take (allocated if omitted)")]),
    KindSpec("securitygroups", "securitygroup",
             [col("name"), id_col(), col("project_id", "project"), Column("rules", _rules)],
             [Opt("rule", "rules", multiple=True, convert=rules, help="direction:protocol:ports:prefix (repeat)")]),
    KindSpec("qospolicies", "qospolicy",
             [col("name"), id_col(), col("max_kbps", "max kbps"), col("max_burst_kbps", "burst kbps")],
             [Opt("max-kbps", "max_kbps", int, required=True, help="rate limit in kbit/s"),
              Opt("burst-kbps", "max_burst_kbps", int, help="burst in kbit")]),
]
BY_KIND = {spec.kind: spec for spec in KINDS}


def build_body(client: Client, options: list[Opt], values: dict[str, Any]) -> dict[str, Any]:
    """The create request from parsed CLI values: unset options are left to the server's defaults."""
    body: dict[str, Any] = {}
    given: dict[str, str] = {}
    for opt in options:
        value = values.get(opt.param)
        if value is None or value is False or (opt.multiple and not value):
            continue
        if opt.field in given:
            raise InvalidInput(f"--{opt.flag} and --{given[opt.field]} cannot be used together", field=opt.field)
        given[opt.field] = opt.flag
        set_path(body, opt.field, opt.convert(client, value) if opt.convert else value)
    return body


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        body = body.setdefault(key, {})
    body[last] = value
