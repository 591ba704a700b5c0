"""`kvnet apply -f` against a real API server: create, idempotence, updates, prune, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from kvnet.cli.main import app

EXAMPLE = Path(__file__).parents[2] / "examples" / "cloud.yaml"
runner = CliRunner()


def apply(server: Any, path: Path, *flags: str, input: str | None = None) -> Result:
    return runner.invoke(app, ["apply", "-f", str(path), *flags, "--server", server.url], input=input)


def write(tmp_path: Path, doc: dict[str, Any], name: str = "cloud.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def names(server: Any, kind: str) -> set[str]:
    with server.client() as client:
        return {r["name"] for r in client.list(kind) if r["name"]}


def test_example_applies_then_second_apply_changes_nothing(api_server: Any) -> None:
    first = apply(api_server, EXAMPLE, "--yes")
    assert first.exit_code == 0, (first.stdout, first.stderr)
    assert "17 to add, 0 to change, 0 to delete" in first.stdout    # config: 1500 is the default
    assert "applied 17 change(s)" in first.stdout
    with api_server.client() as client:
        assert {h["id"] for h in client.list("hosts")} == {"h1", "h2", "h3"}
        blue, red = client.find("ports", "blue-vm1"), client.find("ports", "red-vm1")
        assert blue["fixed_ips"][0]["ip_address"] == red["fixed_ips"][0]["ip_address"] == "10.10.0.10"
        assert blue["network_id"] != red["network_id"]
        assert blue["security_group_ids"] == [client.find("securitygroups", "ssh-web")["id"]]
        router = client.find("routers", "blue-router")
        assert router["interfaces"][0]["subnet_id"] == client.find("subnets", "blue-subnet")["id"]
        assert router["external_gateway"]["network_id"] == client.find("networks", "ext")["id"]
        fip = client.find("floatingips", "blue-vm1-fip")
        assert (fip["port_id"], fip["status"]) == (blue["id"], "ACTIVE")

    revision = api_server.cloud.store.revision()
    second = apply(api_server, EXAMPLE)          # no --yes needed: nothing to confirm
    assert second.exit_code == 0, second.stderr
    assert "no changes" in second.stdout
    assert api_server.cloud.store.revision() == revision


def test_dry_run_and_declined_confirmation_change_nothing(api_server: Any) -> None:
    revision = api_server.cloud.store.revision()
    dry = apply(api_server, EXAMPLE, "--dry-run")
    assert dry.exit_code == 0
    assert "blue-vm1" in dry.stdout and "red-subnet" in dry.stdout
    declined = apply(api_server, EXAMPLE, input="n\n")
    assert declined.exit_code == 1
    assert "aborted" in declined.stderr
    assert api_server.cloud.store.revision() == revision


def test_changed_file_updates_only_what_differs(api_server: Any, tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert apply(api_server, EXAMPLE, "--yes").exit_code == 0
    doc["networks"][1]["mtu"] = 1400
    doc["qospolicies"][0]["max_kbps"] = 50000
    result = apply(api_server, write(tmp_path, doc), "--yes")
    assert result.exit_code == 0, result.stderr
    assert "0 to add, 2 to change, 0 to delete" in result.stdout
    assert "mtu: 1450 -> 1400" in result.stdout
    with api_server.client() as client:
        assert client.find("networks", "blue-net")["mtu"] == 1400
        assert client.find("qospolicies", "bronze")["max_kbps"] == 50000
    assert "no changes" in apply(api_server, write(tmp_path, doc)).stdout


def test_prune_deletes_what_the_file_no_longer_lists(api_server: Any, tmp_path: Path) -> None:
    assert apply(api_server, EXAMPLE, "--yes").exit_code == 0
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["ports"] = [p for p in doc["ports"] if p["name"] not in ("red-vm1", "blue-vm1")]
    doc["floatingips"] = []
    smaller = write(tmp_path, doc)

    kept = apply(api_server, smaller, "--yes")           # without --prune nothing unlisted is deleted
    assert kept.exit_code == 0, kept.stderr
    assert "no changes" in kept.stdout
    assert {"red-vm1", "blue-vm1"} <= names(api_server, "ports")

    pruned = apply(api_server, smaller, "--yes", "--prune")
    assert pruned.exit_code == 0, (pruned.stdout, pruned.stderr)
    assert "0 to add, 0 to change, 3 to delete" in pruned.stdout
    assert names(api_server, "ports") == {"blue-vm2"}
    assert names(api_server, "floatingips") == set()
    assert names(api_server, "hosts") == {"h1", "h2", "h3"}
    assert "no changes" in apply(api_server, smaller, "--prune").stdout

    # A file that does not speak for project red never deletes red's resources.
    doc["networks"] = [n for n in doc["networks"] if n["name"] != "red-net"]
    doc["subnets"] = [s for s in doc["subnets"] if s["name"] != "red-subnet"]
    without_red = apply(api_server, write(tmp_path, doc), "--yes", "--prune")
    assert without_red.exit_code == 0, without_red.stderr
    assert "no changes" in without_red.stdout
    assert "red-net" in names(api_server, "networks")


def test_one_failing_resource_stores_none_of_the_file(api_server: Any, tmp_path: Path) -> None:
    """The 50th of 50 resources fails only on the server (a fixed IP outside every subnet): nothing of
    the file is stored, and the error names that resource."""
    revision = api_server.cloud.store.revision()
    doc = {"networks": [{"name": f"n{i}"} for i in range(48)],
           "subnets": [{"name": "s0", "network": "n0", "cidr": "10.0.0.0/24"}],
           "ports": [{"name": "p1", "network": "n0", "fixed_ips": [{"ip_address": "10.9.9.9"}]}]}
    result = apply(api_server, write(tmp_path, doc), "--yes")
    assert result.exit_code == 1
    assert "error: create port p1: fixed_ips[0].ip_address: 10.9.9.9 is not in any subnet" in result.stderr
    assert "nothing was applied: the 50 change(s) are one transaction" in result.stderr
    assert api_server.cloud.store.revision() == revision
    assert names(api_server, "networks") == set()


def test_same_names_in_two_projects_resolve_within_each_file_project(api_server: Any, tmp_path: Path) -> None:
    """Two tenants may both have a `web` network and `web-sub`; each file resolves its own, and a name
    of another tenant's private network is never found. The operator's shared network is."""
    shared = {"project": "default", "networks": [{"name": "ext", "external": True, "shared": True,
                                                   "network_type": "local"}]}
    assert apply(api_server, write(tmp_path, shared, "ext.yaml"), "--yes").exit_code == 0
    ids = {}
    for tenant, cidr in (("blue", "10.1.0.0/24"), ("red", "10.2.0.0/24")):
        doc = {"project": tenant, "networks": [{"name": "web"}],
               "subnets": [{"name": "web-sub", "network": "web", "cidr": cidr}],
               "ports": [{"name": "vm", "network": "web"}],
               "routers": [{"name": "r", "gateway": "ext", "interfaces": ["web-sub"]}]}
        result = apply(api_server, write(tmp_path, doc, f"{tenant}.yaml"), "--yes")
        assert result.exit_code == 0, (result.stdout, result.stderr)
        assert "no changes" in apply(api_server, write(tmp_path, doc, f"{tenant}.yaml")).stdout
        with api_server.client() as client:
            net = client.find("networks", "web", project=tenant)
            assert client.find("ports", "vm", project=tenant)["network_id"] == net["id"]
            assert client.find("subnets", "web-sub", project=tenant)["cidr"] == cidr
            ids[tenant] = net["id"]
    assert ids["blue"] != ids["red"]
    # green has no `web`: blue's and red's private ones are not its to use
    green = {"project": "green", "ports": [{"name": "vm", "network": "web"}]}
    refused = apply(api_server, write(tmp_path, green, "green.yaml"), "--yes")
    assert refused.exit_code == 1
    assert "ports[vm]: refers to network 'web', which is neither in the file nor on the server in project green" \
        in refused.stderr


def test_file_errors_are_reported_before_anything_changes(api_server: Any, tmp_path: Path) -> None:
    revision = api_server.cloud.store.revision()
    doc = {"networks": [{"name": "n1"}], "ports": [{"name": "p1", "network": "n2"}]}
    result = apply(api_server, write(tmp_path, doc), "--yes")
    assert result.exit_code == 1
    assert "error: ports[p1]: refers to network 'n2'" in result.stderr
    missing = apply(api_server, tmp_path / "absent.yaml", "--yes")
    assert missing.exit_code == 1 and "error: file: cannot read" in missing.stderr
    assert api_server.cloud.store.revision() == revision


def test_groups_with_remote_groups_and_the_default_group_apply_and_reapply(api_server: Any, tmp_path: Path) -> None:
    doc = {"project": "shop",
           "securitygroups": [
               {"name": "default", "rules": [{"direction": "egress"}]},
               {"name": "web", "rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 443}]},
               {"name": "db", "rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 5432,
                                         "remote_group": "web"},
                                        {"direction": "ingress", "protocol": "tcp", "port_range_min": 5432,
                                         "remote_group": "db"}]}],
           "networks": [{"name": "n"}],
           "ports": [{"name": "web1", "network": "n", "security_groups": ["web"]}, {"name": "vm", "network": "n"}]}
    path = write(tmp_path, doc)
    first = apply(api_server, path, "--yes")
    assert first.exit_code == 0, (first.stdout, first.stderr)
    with api_server.client() as client:
        groups = {g["name"]: g for g in client.list("securitygroups", project_id="shop")}
        assert set(groups) == {"default", "web", "db"}
        assert [r["remote_group_id"] for r in groups["db"]["rules"]] == [groups["web"]["id"], groups["db"]["id"]]
        assert client.find("ports", "vm", project="shop")["security_group_ids"] == [groups["default"]["id"]]
    assert "no changes" in apply(api_server, path).stdout
    doc["securitygroups"][1]["rules"].append({"direction": "ingress", "protocol": "icmp"})
    changed = apply(api_server, write(tmp_path, doc), "--yes", "--prune")
    assert changed.exit_code == 0, changed.stderr
    assert "0 to add, 1 to change, 0 to delete" in changed.stdout  # --prune leaves the default group alone
