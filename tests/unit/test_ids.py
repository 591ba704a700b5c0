"""Ids are UUIDs, their short forms (which name devices on the hosts) are unique per kind, and a name
never stands for an id or an id for a name (issue #13, item 1)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kvnet.client import Client
from kvnet.errors import Conflict, IdTaken, InvalidInput, NotFound
from kvnet.model import resources
from kvnet.server.cloud import Cloud

A = "0a1b2c3d-4e5f-4000-8000-000000000001"  # short form (first 10 hex digits): 0a1b2c3d4e


def twin(rid: str, last: str = "2") -> str:
    """Another UUID with the same first 10 hex digits."""
    return rid[:-1] + last


@pytest.mark.parametrize("bad", ["prod-net", "", "x/../y", "0a1b2c3d", "0a1b2c3d-4e5f-0040-0080-00000000000g"])
def test_a_client_chosen_id_must_be_a_uuid(client: Client, bad: str) -> None:
    before = client.health()["revision"]
    with pytest.raises(InvalidInput) as info:
        client.create("networks", {"id": bad, "name": "n"})
    assert info.value.field == "id"
    assert "is not a UUID" in info.value.message
    assert client.health()["revision"] == before


def test_a_uuid_is_stored_in_canonical_form_and_reads_back(client: Client) -> None:
    rid = str(uuid.uuid4())
    created = client.create("networks", {"id": rid.upper(), "name": "n"})
    assert created["id"] == rid
    assert client.get("networks", rid)["name"] == "n"
    client.delete("networks", rid)
    with pytest.raises(NotFound):
        client.get("networks", rid)


def test_an_id_in_use_is_409(client: Client) -> None:
    rid = str(uuid.uuid4())
    client.create("networks", {"id": rid})
    with pytest.raises(IdTaken, match="already exists"):
        client.create("networks", {"id": rid})


@pytest.mark.parametrize("kind", ["networks", "routers", "ports"])
def test_ids_sharing_their_device_name_digits_are_refused(client: Client, kind: str) -> None:
    """Two networks whose ids share 10 hex digits would share a bridge and VXLAN device on a host."""
    body: dict[str, Any] = {}
    if kind == "ports":
        body = {"network_id": client.create("networks", {})["id"]}
    first = client.create(kind, {"id": A, **body})
    before = client.health()["revision"]
    with pytest.raises(IdTaken) as info:
        client.create(kind, {"id": twin(A), **body})
    assert info.value.status == 409 and info.value.field == "id"
    assert first["id"] in info.value.message and "10 hex digits" in info.value.message
    assert client.health()["revision"] == before
    client.delete(kind, first["id"])  # frees the short form
    assert client.create(kind, {"id": twin(A), **body})["id"] == twin(A)


def test_a_server_picked_id_whose_short_form_is_taken_is_picked_again(cloud: Cloud,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cloud.create("networks", {"id": A})
    picks = iter([uuid.UUID(twin(A)), uuid.UUID(twin(A, "3")), uuid.UUID(int=uuid.UUID(A).int ^ (1 << 100))])
    monkeypatch.setattr(resources.uuid, "uuid4", lambda: next(picks))
    network = cloud.create("networks", {})
    assert network["id"][:11] != A[:11]


def test_router_ports_get_fresh_ids_when_theirs_collide(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    net = cloud.create("networks", {})
    subnet = cloud.create("subnets", {"network_id": net["id"], "cidr": "10.0.0.0/24"})
    router = cloud.create("routers", {})
    cloud.create("ports", {"id": A, "network_id": net["id"]})
    real = uuid.uuid4
    picks = iter([uuid.UUID(twin(A))])
    monkeypatch.setattr(resources.uuid, "uuid4", lambda: next(picks, None) or real())
    attached = cloud.router_add_interface(router["id"], subnet["id"])
    assert attached["interfaces"][0]["port_id"][:11] != A[:11]


def test_hosts_are_named_and_their_id_is_their_name(client: Client) -> None:
    with pytest.raises(InvalidInput) as info:
        client.create("hosts", {"id": "h1", "name": "h2", "tunnel_ip": "192.0.2.1"})
    assert info.value.field == "name"
    with pytest.raises(InvalidInput) as info:
        client.create("hosts", {"id": "x/../y", "tunnel_ip": "192.0.2.1"})
    assert info.value.field == "name"
    host = client.create("hosts", {"name": "h1", "tunnel_ip": "192.0.2.1"})
    assert host["id"] == "h1"
    with pytest.raises(InvalidInput):
        client.update("hosts", "h1", {"name": "h9"})


def test_a_name_cannot_be_a_uuid(client: Client) -> None:
    with pytest.raises(InvalidInput) as info:
        client.create("networks", {"name": str(uuid.uuid4())})
    assert info.value.field == "name" and "would read as an id" in info.value.message


def test_names_resolve_within_a_project_and_never_as_ids(client: Client) -> None:
    blue = client.create("networks", {"name": "prod-net", "project_id": "blue"})
    red = client.create("networks", {"name": "prod-net", "project_id": "red"})
    with pytest.raises(Conflict) as info:
        client.find("networks", "prod-net")
    assert "give --project" in info.value.message
    assert client.find("networks", "prod-net", project="blue")["id"] == blue["id"]
    assert client.find("networks", "prod-net", project="red")["id"] == red["id"]
    assert client.find("networks", red["id"])["project_id"] == "red"
    with pytest.raises(NotFound):  # a full id is only ever an id
        client.find("networks", str(uuid.uuid4()))


def test_cli_project_option_picks_among_same_named_resources(api_server: Any) -> None:
    from typer.testing import CliRunner

    from kvnet.cli.main import app

    with api_server.client() as client:
        blue = client.create("networks", {"name": "web", "project_id": "blue"})
        client.create("networks", {"name": "web", "project_id": "red"})
    runner = CliRunner()
    ambiguous = runner.invoke(app, ["--server", api_server.url, "network", "show", "web"])
    assert ambiguous.exit_code == 1 and "give --project" in ambiguous.stderr
    shown = runner.invoke(app, ["--server", api_server.url, "--project", "blue", "network", "show", "web", "--json"])
    assert shown.exit_code == 0, shown.stderr
    assert blue["id"] in shown.stdout
