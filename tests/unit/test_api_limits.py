"""Request bodies are capped while they are read, and bad JSON never reaches the store (issue #13, 3 and 4).

The size limit is measured against a real uvicorn server on a unix socket, with raw sockets, so that
the test controls exactly what is sent and when: a declared Content-Length over the cap is answered
before any of the body is sent; a chunked body is cut off soon after it passes the cap.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kvnet.server.api import create_app
from kvnet.server.cloud import Cloud
from kvnet.server.limits import DEFAULT_BODY_LIMIT, MAX_JSON_DEPTH, BodyLimits, MiB
from kvnet.server.testing import RunningServer

HUNDRED_MB = 100 * MiB


@pytest.fixture
def http(api_server: RunningServer) -> Iterator[httpx.Client]:
    with api_server.http() as client:
        yield client


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def send_headers(sock_path: Path, headers: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(sock_path))
    sock.sendall(f"POST /v1/networks HTTP/1.1\r\nHost: kvnet\r\nContent-Type: application/json\r\n{headers}\r\n"
                 .encode())
    return sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(headers[b"content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


def test_declared_100mb_body_is_413_before_it_is_sent(api_server: RunningServer, tmp_path: Path) -> None:
    start = time.monotonic()
    sock = send_headers(tmp_path / "kvnet.sock", f"Content-Length: {HUNDRED_MB}\r\n")
    with sock:
        status, body = read_response(sock)  # not one byte of the body was sent
    elapsed = time.monotonic() - start
    assert status == 413
    error = json.loads(body)["error"]
    assert error["type"] == "PayloadTooLarge" and error["field"] is None
    assert f"at most {DEFAULT_BODY_LIMIT}" in error["message"]
    assert elapsed < 1.0, f"413 took {elapsed:.2f} s"
    assert api_server.cloud.store.revision() == 0


def test_chunked_100mb_body_is_cut_off_past_the_limit(api_server: RunningServer, tmp_path: Path) -> None:
    chunk = b"A" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sock = send_headers(tmp_path / "kvnet.sock", "Transfer-Encoding: chunked\r\n")
    sent, start = 0, time.monotonic()
    with sock:
        try:
            while sent < HUNDRED_MB:
                sock.sendall(frame)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: the rest of the body is refused
        status, body = read_response(sock)
    elapsed = time.monotonic() - start
    assert status == 413
    assert json.loads(body)["error"]["type"] == "PayloadTooLarge"
    assert b"AAAA" not in body
    # What the client pushed before noticing: the limit plus what the socket buffers hold.
    assert sent < 8 * MiB, f"{sent} bytes were sent before the server refused"
    assert elapsed < 2.0, f"413 took {elapsed:.2f} s"


def test_a_100mb_create_is_413_at_once_and_not_echoed(api_server: RunningServer) -> None:
    """What a client library does: send the whole body, and read the answer the server gave early."""
    body = b'{"name": "' + b"x" * HUNDRED_MB + b'"}'
    with api_server.http() as http:
        start = time.monotonic()
        response = http.post("/v1/networks", content=body, headers={"Content-Type": "application/json"})
        elapsed = time.monotonic() - start
    assert response.status_code == 413
    assert len(response.content) < 200 and b"xxxx" not in response.content
    assert response.headers["connection"] == "close"
    assert elapsed < 1.0, f"413 took {elapsed:.2f} s"
    assert api_server.cloud.store.revision() == 0


def test_a_route_can_take_more_than_the_default(cloud: Cloud, tmp_path: Path) -> None:
    limits = BodyLimits(default=200, routes={"POST /v1/networks": 2000})
    server = RunningServer(cloud, tmp_path / "limits.sock", create_app(cloud, body_limits=limits))
    server.start()
    try:
        with server.http() as http:
            body = {"name": "n1", "project_id": "p" * 500}
            created = http.post("/v1/networks", json=body)
            assert created.status_code == 201
            response = http.patch(f"/v1/networks/{created.json()['id']}", json=body)
    finally:
        server.stop()
    assert response.status_code == 413
    error = error_of(response)
    assert error["type"] == "PayloadTooLarge" and error["field"] is None
    assert error["message"].endswith("bytes; this route accepts at most 200")


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/networks"), ("PUT", "/v1/hosts/h1/heartbeat")])
def test_100000_nested_arrays_are_422(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path, content=b"[" * 100_000 + b"]" * 100_000,
                            headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert error_of(response)["message"] == f"the request body nests deeper than {MAX_JSON_DEPTH} levels"


def test_nesting_is_limited_and_the_field_named(http: httpx.Client) -> None:
    deep: Any = {}
    for _ in range(MAX_JSON_DEPTH):
        deep = {"x": deep}
    response = http.post("/v1/networks", json={"name": "n", "shared": deep})
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"].startswith("shared.x.x") and error["message"] == f"nests deeper than {MAX_JSON_DEPTH} levels"


@pytest.mark.parametrize(("raw", "field", "message"), [
    (b'{"mtu": 1e400}', "mtu", "is out of range for a 64-bit float"),
    (b'{"mtu": NaN}', None, "NaN is not a JSON number"),
    (b'{"mtu": -Infinity}', None, "-Infinity is not a JSON number"),
    (b'{"segmentation_id": 1234567890123456789012345678901234567890}', "segmentation_id",
     "is out of range: integers must fit in 64 bits"),
    (b'{"network_type": "vlan", "physnet": "p", "segmentation_id": -9223372036854775809}', "segmentation_id",
     "is out of range: integers must fit in 64 bits"),
    (b'{"name": "\\ud800"}', "name", "contains a lone surrogate"),
    (b'{"\\udfff": 1}', None, "contains a lone surrogate"),
    (b'{"name": "\xff"}', None, "the request body is not UTF-8 (invalid byte at offset 10)"),
    (b'{"name": ', None, "the request body is not JSON"),
    (b"", None, "the request body is empty; expected a JSON object"),
])
def test_json_out_of_bounds_is_422_naming_the_field(http: httpx.Client, raw: bytes, field: str | None,
                                                     message: str) -> None:
    response = http.post("/v1/networks", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["type"] == "InvalidInput" and error["field"] == field
    assert message in error["message"]
    assert http.get("/healthz").json()["revision"] == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data"])
def test_a_body_that_is_not_json_is_415(http: httpx.Client, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = http.post("/v1/networks", content=b'{"name": "n"}', headers=headers)
    assert response.status_code == 415
    assert error_of(response) == {"type": "UnsupportedMediaType", "field": "Content-Type",
                                  "message": "the request body must be JSON (Content-Type: application/json)"}


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/merge-patch+json"])
def test_json_content_types_are_accepted(http: httpx.Client, content_type: str) -> None:
    response = http.post("/v1/networks", content=b'{"name": "n"}', headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text
