"""The served OpenAPI document is valid and true (issue #13, item 4): every `$ref` resolves, resources
have create, update and response schemas, and each operation lists the errors it answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from kvnet.model.resources import RESOURCE_TYPES, CloudConfig
from kvnet.server.api import BODY_LIMITS, KINDS
from kvnet.server.cloud import Cloud
from kvnet.server.limits import DEFAULT_BODY_LIMIT, INT64_MAX, INT64_MIN
from kvnet.server.openapi import read_only, resource_schema
from kvnet.server.testing import RunningServer
from kvnet.store.sqlite import SQLiteStore

METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The document as a real server serves it (read once: it does not change)."""
    path = tmp_path_factory.mktemp("openapi")
    store = SQLiteStore(path / "kvnet.db")
    server = RunningServer(Cloud(store), path / "kvnet.sock")
    server.start()
    try:
        with server.http() as http:
            yield http.get("/openapi.json").json()
    finally:
        server.stop()
        store.close()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from nodes(value)


def resolve(doc: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    target: Any = doc
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(target, dict) and part in target, f"{pointer} does not resolve"
        target = target[part]
    return target


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)


def test_every_ref_resolves_within_the_document(doc: dict[str, Any]) -> None:
    refs = [node["$ref"] for node in nodes(doc) if "$ref" in node]
    assert refs, "the document refers to no schema at all"
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        resolve(doc, ref)
    assert not [node for node in nodes(doc) if "$defs" in node]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_create_update_and_response_schemas(doc: dict[str, Any], kind: str) -> None:
    schemas, cls = doc["components"]["schemas"], RESOURCE_TYPES[kind]
    answer, create, update = (schemas[resource_schema(kind, v)] for v in ("response", "create", "update"))
    assert set(answer["properties"]) == set(cls.model_fields)
    assert set(answer["required"]) == set(cls.model_fields), "an answer carries every field"
    assert not set(create["properties"]) & cls.server_fields
    assert "id" in create["properties"] and "id" not in create.get("required", [])
    assert not set(update["properties"]) & read_only(cls)
    assert set(update["properties"]) == set(cls.model_fields) - read_only(cls)
    assert "required" not in update
    assert not [name for name, prop in update["properties"].items() if "default" in prop]
    for schema in (create, update):
        assert schema["additionalProperties"] is False


def test_update_schemas_have_no_id_or_status(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for name in ("PortUpdate", "HostUpdate", "FloatingIPUpdate", "NetworkUpdate", "CloudConfigUpdate"):
        assert "id" not in schemas[name]["properties"]
        assert "status" not in schemas[name]["properties"]


def test_crud_operations_refer_to_their_schemas(doc: dict[str, Any]) -> None:
    def body(operation: dict[str, Any]) -> str:
        return operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]

    def answer(operation: dict[str, Any], status: str) -> dict[str, Any]:
        return operation["responses"][status]["content"]["application/json"]["schema"]

    for kind in KINDS:
        collection, item = doc["paths"][f"/v1/{kind}"], doc["paths"][f"/v1/{kind}/{{rid}}"]
        assert body(collection["post"]) == resource_schema(kind, "create")
        assert body(item["patch"]) == resource_schema(kind, "update")
        assert answer(collection["post"], "201")["$ref"].endswith("/" + resource_schema(kind))
        assert answer(collection["get"], "200")["items"]["$ref"].endswith("/" + resource_schema(kind))
        assert answer(item["get"], "200")["$ref"].endswith("/" + resource_schema(kind))
        assert "204" in item["delete"]["responses"]
    assert body(doc["paths"]["/v1/config"]["patch"]) == resource_schema(CloudConfig.kind, "update")


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("post", "/v1/ports", {"201", "404", "409", "413", "415", "422"}),
    ("get", "/v1/ports/{rid}", {"200", "404", "422"}),
    ("patch", "/v1/ports/{rid}", {"200", "404", "409", "413", "415", "422"}),
    ("delete", "/v1/ports/{rid}", {"204", "404", "409", "422"}),
    ("put", "/v1/routers/{router_id}/add_interface", {"200", "404", "409", "413", "415", "422"}),
    ("put", "/v1/hosts/{name}/heartbeat", {"200", "404", "409", "413", "415", "422"}),
    ("get", "/v1/watch", {"200", "410", "422"}),
    ("get", "/v1/snapshot", {"200"}),
])
def test_operations_list_the_statuses_they_answer(doc: dict[str, Any], method: str, path: str,
                                                  statuses: set[str]) -> None:
    responses = doc["paths"][path][method]["responses"]
    assert set(responses) == statuses
    for status in statuses - {"200", "201", "204"}:
        schema = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert schema.endswith("/CompactedError" if status == "410" else "/Error")


def test_every_operation_with_input_answers_kvnet_errors(doc: dict[str, Any]) -> None:
    for method, path, operation in operations(doc):
        responses = operation["responses"]
        if "requestBody" in operation:
            assert {"413", "415", "422"} <= set(responses), (method, path)
            limit = BODY_LIMITS.for_operation(method.upper(), path)
            assert str(limit) in responses["413"]["description"]
            assert limit == DEFAULT_BODY_LIMIT or path == "/v1/batch"  # only the batch takes more
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert "404" in responses, (method, path)
        if method != "get":
            assert "409" in responses, (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_integers_are_bounded_to_what_the_store_holds(doc: dict[str, Any]) -> None:
    integers = [node for node in nodes(doc) if node.get("type") == "integer"]
    assert integers
    for node in integers:
        assert node["minimum"] >= INT64_MIN and node["maximum"] <= INT64_MAX
    watch = {p["name"]: p["schema"] for p in doc["paths"]["/v1/watch"]["get"]["parameters"]}
    assert (watch["from_revision"]["minimum"], watch["from_revision"]["maximum"]) == (0, INT64_MAX)
    assert watch["timeout"]["maximum"] == 60


def test_list_filters_are_documented(doc: dict[str, Any]) -> None:
    filters = {p["name"] for p in doc["paths"]["/v1/ports"]["get"]["parameters"]}
    assert {"name", "network_id", "binding_host", "status", "device_owner"} <= filters
    assert "fixed_ips" not in filters
