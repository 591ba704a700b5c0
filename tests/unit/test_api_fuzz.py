"""Property-based fuzzing of the whole HTTP API (schemathesis), in process, against the served document.

Every operation of /openapi.json gets generated requests, valid ones and invalid ones (wrong types,
out-of-range values, missing fields, undeclared methods), and each answer is checked: no server error,
a status the document lists for it, a body that matches the documented schema, `Allow` on a 405.

Each operation runs against a fresh store seeded with one of each kind. Generated path ids and body
references (`network_id`, `subnet_id`, `binding_host`, ...) are often swapped for seeded ids, and
addresses, CIDRs and MACs for well-formed ones, so that requests reach the rules behind the lookups and
format checks (allocation, overlaps, associations) instead of stopping at a 404 or 422.

The run is bounded for `make test`: KVNET_FUZZ_EXAMPLES (default 20) examples per operation and
phase, derandomized, so CI is reproducible. Run longer on demand, e.g.
`KVNET_FUZZ_EXAMPLES=500 .venv/bin/pytest -q -p no:cacheprovider tests/unit/test_api_fuzz.py`.

Two of schemathesis' checks are off, on purpose: `positive_data_acceptance` (a schema-valid body still
breaks rules no schema can say: overlapping subnets, unknown references) and `negative_data_rejection`
(the models accept what pydantic coerces, e.g. `0` for false, and that is the API's contract).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kvnet.server.api import MAX_WATCH_TIMEOUT, create_app
from kvnet.server.cloud import Cloud
from kvnet.store.sqlite import SQLiteStore

EXAMPLES = int(os.environ.get("KVNET_FUZZ_EXAMPLES", "20"))
CONFIG = schemathesis.Config.from_dict({
    "seed": 13,
    "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True},
    "checks": {"positive_data_acceptance": {"enabled": False}, "negative_data_rejection": {"enabled": False}},
})
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Cloud(SQLiteStore(":memory:"))), config=CONFIG)

SEEDS: dict[str, list[str]] = {}  # kind -> ids of the seeded resources, filled by `seeded_app`
CASES: Counter[str] = Counter()  # operation -> cases run


def seed(cloud: Cloud) -> dict[str, list[str]]:
    """One of each kind, wired together: a host that has beaten, an external and a tenant network with
    subnets, a router between them, a port with a security group, a QoS policy and a floating IP."""
    def make(kind: str, body: dict[str, Any]) -> str:
        return cloud.create(kind, {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, body["name"])), **body})["id"]

    host = cloud.create("hosts", {"name": "h1", "tunnel_ip": "192.0.2.1", "roles": ["compute", "network"],
                                  "physnets": {"ext": "eth9"}})["id"]
    cloud.host_heartbeat(host, {"heartbeat_interval": 10})
    ext = make("networks", {"name": "ext", "network_type": "flat", "physnet": "ext", "external": True})
    make("subnets", {"name": "ext-sub", "network_id": ext, "cidr": "203.0.113.0/24"})
    net = make("networks", {"name": "blue"})
    sub = make("subnets", {"name": "blue-sub", "network_id": net, "cidr": "10.0.0.0/24"})
    group = make("securitygroups", {"name": "web", "rules": [
        {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}]})
    qos = make("qospolicies", {"name": "slow", "max_kbps": 1000})
    port = make("ports", {"name": "vm1", "network_id": net, "binding_host": host,
                          "security_group_ids": [group], "qos_policy_id": qos})
    router = make("routers", {"name": "r1", "external_gateway": {"network_id": ext}})
    cloud.router_add_interface(router, sub)
    fip = make("floatingips", {"name": "fip1", "floating_network_id": ext, "port_id": port})
    return {"hosts": [host], "networks": [ext, net], "subnets": [sub], "securitygroups": [group],
            "qospolicies": [qos], "ports": [port], "routers": [router], "floatingips": [fip]}


@pytest.fixture
def seeded_app(tmp_path: Path) -> Iterator[FastAPI]:
    store = SQLiteStore(tmp_path / "kvnet.db")
    cloud = Cloud(store)
    SEEDS.clear()
    SEEDS.update(seed(cloud))
    yield create_app(cloud)
    store.close()


# Values that pass the models' format checks, for fields a random string would never get past: names,
# an address in each seeded subnet and outside them, overlapping and disjoint CIDRs, MACs.
NAMES = ["", "web-1", "blue"]
ADDRESSES = ["10.0.0.50", "10.0.0.1", "10.0.0.255", "203.0.113.9", "192.0.2.7", "2001:db8::5"]
PREFIXES = ["10.0.0.0/25", "10.1.0.0/24", "203.0.113.0/28", "10.2.0.0/30", "2001:db8:1::/64", "0.0.0.0/0"]
MACS = ["fa:16:3e:00:00:01", "fa:6b:76:00:00:02", "01:00:5e:00:00:01"]


def _kind_of(name: str) -> str | None:
    """The kind a field or path parameter refers to: network_id, floating_network_id -> networks;
    binding_host -> hosts; security_group_ids -> securitygroups; qos_policy_id -> qospolicies."""
    word = name.removesuffix("_ids").removesuffix("_id").replace("_", "")
    for kind in SEEDS:
        singular = kind[:-3] + "y" if kind.endswith("ies") else kind[:-1]
        if word.endswith(singular):
            return kind
    return None


def _known_values(key: str) -> list[str]:
    """Seeded ids, or well-formed values, for a field named `key` (or for a kind, on a path)."""
    kind = key if key in SEEDS else _kind_of(key)
    if kind is not None:
        return SEEDS[kind]
    if key in ("cidr", "destination", "remote_ip_prefix"):
        return PREFIXES
    if key.endswith(("ip", "ip_address", "nameservers")) or key in ("start", "end", "nexthop"):
        return ADDRESSES
    return {"name": NAMES, "mac_address": MACS}.get(key, [])


def _with_known_values(value: Any, key: str = "") -> st.SearchStrategy[Any]:
    """`value` as generated, or with its strings often swapped for known values of their field."""
    if isinstance(value, dict):
        return st.fixed_dictionaries({k: _with_known_values(v, k) for k, v in value.items()})
    if isinstance(value, list):
        return st.tuples(*(_with_known_values(v, key) for v in value)).map(list)
    if isinstance(value, str) and (known := _known_values(key)):
        return st.sampled_from([value, *known])
    return st.just(value)


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    return _with_known_values(body)


@schema.hook
def flatmap_path_parameters(context: schemathesis.HookContext, parameters: dict[str, Any] | None,
                            ) -> st.SearchStrategy[Any]:
    if not parameters:
        return st.just(parameters)
    # The kind is the path segment before the parameter: /v1/<kind>/{rid}, /v1/routers/{router_id}/...
    segments = context.operation.path.split("/") if context.operation else []
    kinds = {segments[i][1:-1]: segments[i - 1] for i in range(1, len(segments)) if segments[i].startswith("{")}
    return st.fixed_dictionaries({name: _with_known_values(value, kinds.get(name, name))
                                  for name, value in parameters.items()})


def _no_long_poll(case: schemathesis.Case) -> None:
    """A watch waits up to `timeout` seconds (30 when not given) for a revision that may never come:
    fuzz its values, not the wait. A timeout out of range or not a number is left for the API to refuse."""
    if case.operation.path != "/v1/watch" or not isinstance(case.query, dict):
        return
    try:
        wait = float(case.query.get("timeout", 30))
    except (TypeError, ValueError):
        return
    if 0 < wait <= MAX_WATCH_TIMEOUT:
        case.query["timeout"] = 0


@pytest.fixture(scope="module", autouse=True)
def _report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not CASES:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"api fuzz: {sum(CASES.values())} cases over {len(CASES)} operations "
                            f"({min(CASES.values())}-{max(CASES.values())} each, KVNET_FUZZ_EXAMPLES={EXAMPLES})")


@schema.parametrize()
@settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_fuzz(case: schemathesis.Case, seeded_app: FastAPI) -> None:
    CASES[case.operation.label] += 1
    _no_long_poll(case)
    case.call_and_validate(app=seeded_app)


def test_every_route_is_fuzzed() -> None:
    """The run covers what the app serves: every API route is an operation of the document."""
    app = create_app(Cloud(SQLiteStore(":memory:")))
    served = {(method, route.path) for route in app.routes if isinstance(route, APIRoute) and route.include_in_schema
              for method in route.methods}
    documented = {(operation.method.upper(), operation.path) for operation in
                  (result.ok() for result in schema.get_all_operations())}
    assert served == documented
