"""Every error the API answers has kvnet's shape, names the field, never echoes input at length, and no
input makes the server answer 500 (issue #13, items 3 and 4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kvnet.server.cloud import Cloud
from kvnet.server.http_errors import MAX_MESSAGE, MAX_WORD
from kvnet.server.testing import RunningServer


@pytest.fixture
def http(api_server: RunningServer) -> Iterator[httpx.Client]:
    with api_server.http() as client:
        yield client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"type", "field", "message"}
    return body["error"]


def revision(http: httpx.Client) -> int:
    return http.get("/healthz").json()["revision"]


@pytest.mark.parametrize("from_revision", [2**63, 10**40, -1, "x"])
def test_watch_revision_out_of_range_is_422(http: httpx.Client, from_revision: Any) -> None:
    error = error_of(http.get("/v1/watch", params={"from_revision": from_revision, "timeout": 0}), 422)
    assert error["type"] == "InvalidInput" and error["field"] == "from_revision"


def test_watch_takes_the_largest_revision_the_store_holds(http: httpx.Client) -> None:
    answer = http.get("/v1/watch", params={"from_revision": 2**63 - 1, "timeout": 0})
    assert answer.status_code == 200 and answer.json()["events"] == []


@pytest.mark.parametrize("timeout", ["nan", "inf", "61", "-1"])
def test_watch_timeout_out_of_range_is_422(http: httpx.Client, timeout: str) -> None:
    error = error_of(http.get("/v1/watch", params={"from_revision": 0, "timeout": timeout}), 422)
    assert error["field"] == "timeout"


def test_validation_errors_do_not_echo_the_input(http: httpx.Client) -> None:
    """FastAPI's default 422 carries the whole `input`; kvnet's names the field and cuts long words."""
    huge = "z" * 100_000
    before = revision(http)
    for response in (http.post("/v1/networks", json={"name": huge}),
                     http.get("/v1/watch", params={"from_revision": huge[:30_000]}),
                     http.put("/v1/routers/r1/add_interface", json={"subnet_id": 1, "padding": huge}),
                     http.put("/v1/ports/p1/status", json={"status": huge}),
                     http.post("/v1/networks", json={huge: 1})):
        error = error_of(response, 422)
        assert len(error["message"]) <= MAX_MESSAGE and len(error["field"] or "") <= MAX_MESSAGE
        assert "z" * MAX_WORD not in response.text
    assert revision(http) == before


def test_long_values_in_messages_are_cut_but_named(http: httpx.Client) -> None:
    error = error_of(http.post("/v1/ports", json={"network_id": "n", "mac_address": "m" * 5000}), 422)
    assert error["field"] == "mac_address"
    assert error["message"].startswith("'mmmm") and "...(5002 chars)" in error["message"]
    assert error["message"].endswith("is not a MAC address (expected six hex octets like fa:16:3e:00:00:01)")


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/v1/networks", "GET, POST"),
    ("PUT", "/v1/networks/n1", "DELETE, GET, PATCH"),
    ("OPTIONS", "/v1/config", "GET, PATCH"),
    ("POST", "/v1/watch", "GET"),
    ("GET", "/v1/ports/p1/status", "PUT"),
])
def test_405_lists_every_allowed_method(http: httpx.Client, method: str, path: str, allow: str) -> None:
    response = http.request(method, path)
    error = error_of(response, 405)
    assert response.headers["allow"] == allow
    assert error["type"] == "MethodNotAllowed" and f"answers {allow}, not {method}" in error["message"]


def test_an_unknown_path_is_404_in_kvnet_shape(http: httpx.Client) -> None:
    assert error_of(http.get("/v1/nothing"), 404)["type"] == "NotFound"
    assert error_of(http.get("/v1/networks/"), 404)["type"] == "NotFound"  # no redirect to the list


@pytest.mark.parametrize(("body", "field"), [
    ({"status": "UP"}, "status"),
    ({"detail": {}}, "status"),
    ({"status": "ACTIVE", "detail": [1]}, "detail"),
    ({"status": "ACTIVE", "host": "h1", "other": 1}, "other"),
    ({"status": "ACTIVE"}, "host"),
    ([1], None),
])
def test_a_bad_port_status_is_422_not_500(http: httpx.Client, body: Any, field: str | None) -> None:
    network = http.post("/v1/networks", json={}).json()
    port = http.post("/v1/ports", json={"network_id": network["id"]}).json()
    before = revision(http)
    error = error_of(http.put(f"/v1/ports/{port['id']}/status", json=body), 422)
    assert error["field"] == field
    assert revision(http) == before


@pytest.mark.parametrize("interval", ["abc", 0, -5, 1e9, None])
def test_a_bad_heartbeat_interval_is_refused_and_hosts_still_list(http: httpx.Client, interval: Any) -> None:
    """The server reads `heartbeat_interval` to decide liveness: a stored non-number made every host
    listing answer 500 from then on."""
    http.post("/v1/hosts", json={"name": "h1", "tunnel_ip": "192.0.2.1"})
    response = http.put("/v1/hosts/h1/heartbeat", json={"heartbeat_interval": interval, "pid": 1})
    if interval is None:
        assert response.status_code == 200  # not given: the default interval applies
    else:
        assert error_of(response, 422)["field"] == "heartbeat_interval"
    listed = http.get("/v1/hosts")
    assert listed.status_code == 200 and listed.json()[0]["id"] == "h1"


def test_an_unexpected_failure_is_a_generic_500(api_server: RunningServer, http: httpx.Client,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("internals: /var/lib/kvnet/secret.db is locked")

    monkeypatch.setattr(Cloud, "list", broken)
    error = error_of(http.get("/v1/networks"), 500)
    assert error == {"type": "InternalError", "field": None,
                     "message": "internal server error; the server log has the details"}
