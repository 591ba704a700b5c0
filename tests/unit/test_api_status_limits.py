"""Status fields that agents write are capped: what is stored is shipped in every snapshot to every agent
(issue #13, item 3). Too large is a 422 that names the field and the size, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kvnet.errors import InvalidInput, KvnetError
from kvnet.server.cloud import Cloud
from kvnet.server.limits import AGENT_REPORT_MAX_BYTES, STATUS_DETAIL_MAX_BYTES, MiB, serialized_size
from kvnet.server.testing import RunningServer


@pytest.fixture
def port(cloud: Cloud) -> dict[str, Any]:
    cloud.create("hosts", {"name": "h1", "tunnel_ip": "192.0.2.1"})
    network = cloud.create("networks", {"name": "n"})
    return cloud.create("ports", {"network_id": network["id"], "binding_host": "h1"})


def blob(size: int) -> dict[str, str]:
    """A JSON object of exactly `size` bytes serialized."""
    value = {"log": ""}
    value["log"] = "x" * (size - serialized_size(value))
    return value


def test_a_20mb_agent_report_is_refused_and_not_stored(cloud: Cloud, port: dict[str, Any]) -> None:
    before = cloud.store.revision()
    with pytest.raises(InvalidInput) as info:
        cloud.host_heartbeat("h1", blob(20 * MiB))
    assert info.value.field == "agent"
    assert info.value.message == f"is {20 * MiB} bytes serialized; at most {AGENT_REPORT_MAX_BYTES} are accepted"
    assert cloud.store.revision() == before
    assert cloud.get("hosts", "h1")["agent"] == {}


def test_a_port_status_detail_over_4kib_is_refused_and_not_stored(cloud: Cloud, port: dict[str, Any]) -> None:
    before = cloud.store.revision()
    with pytest.raises(InvalidInput) as info:
        cloud.set_port_status(port["id"], "ERROR", blob(STATUS_DETAIL_MAX_BYTES + 1), "h1")
    assert (info.value.field, info.value.message) == (
        "detail", f"is {STATUS_DETAIL_MAX_BYTES + 1} bytes serialized; at most {STATUS_DETAIL_MAX_BYTES} are accepted")
    assert cloud.store.revision() == before
    assert cloud.get("ports", port["id"])["status"] == "BUILD"


def test_status_fields_at_the_limit_are_stored(cloud: Cloud, port: dict[str, Any]) -> None:
    assert cloud.host_heartbeat("h1", blob(AGENT_REPORT_MAX_BYTES))["agent"]["log"]
    assert cloud.set_port_status(port["id"], "ACTIVE", blob(STATUS_DETAIL_MAX_BYTES), "h1")["status"] == "ACTIVE"


def test_the_largest_sriov_report_fits(cloud: Cloud, port: dict[str, Any]) -> None:
    """4 PFs x 256 VFs (an E810's most), as `kvnet.sriov.report.host_report` writes it."""
    vfs = [{"index": i, "pci_address": f"0000:3b:{i // 8:02x}.{i % 8}", "vendor_device": "8086:1889",
            "iommu_group": 100 + i} for i in range(256)]
    pfs = [{"name": f"ens{p}f0", "pci_address": f"0000:3b:00.{p}", "vendor_device": "8086:1593", "total_vfs": 256,
            "num_vfs": 256, "vfs": vfs} for p in range(4)]
    report = {"pid": 4242, "version": "0.1.0", "reconciles": 10**6, "revision": 10**9, "last_reconcile_ms": 12.5,
              "heartbeat_interval": 10.0, "sriov": {"pfs": pfs, "emulated": False}}
    assert serialized_size(report) < AGENT_REPORT_MAX_BYTES
    assert len(cloud.host_heartbeat("h1", report)["agent"]["sriov"]["pfs"]) == 4


def test_through_the_api_an_oversized_report_is_422_with_field_and_size(api_server: RunningServer,
                                                                        port: dict[str, Any]) -> None:
    with api_server.client() as client:
        before = client.health()["revision"]
        too_big = blob(AGENT_REPORT_MAX_BYTES + 100)
        with pytest.raises(KvnetError) as info:
            client.heartbeat("h1", too_big)
        assert (info.value.status, info.value.field) == (422, "agent")
        assert f"is {AGENT_REPORT_MAX_BYTES + 100} bytes serialized" in info.value.message
        with pytest.raises(KvnetError) as info:
            client.set_port_status(port["id"], "ACTIVE", blob(10_000), host="h1")
        assert (info.value.status, info.value.field) == (422, "detail")
        assert client.health()["revision"] == before
        assert client.get("hosts", "h1")["agent"] == {}


def test_through_the_api_a_20mb_report_is_refused_at_the_door(api_server: RunningServer, port: dict[str, Any]) -> None:
    with api_server.http() as http:
        body = json.dumps(blob(20 * MiB)).encode()
        response = http.put("/v1/hosts/h1/heartbeat", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert api_server.cloud.get("hosts", "h1")["agent"] == {}
