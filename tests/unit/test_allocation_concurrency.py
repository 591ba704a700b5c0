"""IP and MAC allocation under concurrent requests through the real HTTP API: never a duplicate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from kvnet.client import Client
from kvnet.errors import Exhausted
from kvnet.server.testing import RunningServer


def test_fifty_concurrent_port_creates_get_unique_ips_and_macs(api_server: RunningServer) -> None:
    with api_server.client() as admin:
        network = admin.create("networks", {"name": "n"})
        admin.create("subnets", {"network_id": network["id"], "cidr": "10.0.0.0/24"})

    def create(_: int) -> dict:
        with Client(api_server.url) as c:
            return c.create("ports", {"network_id": network["id"]})

    with ThreadPoolExecutor(max_workers=50) as pool:
        ports = list(pool.map(create, range(50)))
    ips = [p["fixed_ips"][0]["ip_address"] for p in ports]
    macs = [p["mac_address"] for p in ports]
    assert len(set(ips)) == 50 and len(set(macs)) == 50
    assert all(int(m.split(":")[0], 16) & 2 and not int(m.split(":")[0], 16) & 1 for m in macs), \
        "MACs must be locally administered unicast"
    with api_server.client() as admin:
        assert len(admin.list("ports")) == 50


def test_exhausted_pool_is_a_clear_error_and_stores_nothing(client: Client) -> None:
    network = client.create("networks", {})
    client.create("subnets", {"network_id": network["id"], "cidr": "10.0.0.0/29",
                              "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.3"}]})
    client.create("ports", {"network_id": network["id"]})
    client.create("ports", {"network_id": network["id"]})
    try:
        client.create("ports", {"network_id": network["id"]})
        raise AssertionError("expected Exhausted")
    except Exhausted as exc:
        assert exc.field == "fixed_ips[0]" and "no free address left" in exc.message
    assert len(client.list("ports")) == 2
