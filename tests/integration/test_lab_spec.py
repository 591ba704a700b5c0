"""Lab names and specs (pure: no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvnet.lab import names as n
from kvnet.lab.control import agent_argv, server_argv, server_url
from kvnet.lab.lab import Lab
from kvnet.lab.spec import HostSpec, LabSpec, default_spec
from kvnet.lab.testing import unique_lab_name


def test_default_spec_has_one_network_node() -> None:
    spec = default_spec("kvlab", 3)
    assert [(h.name, h.roles) for h in spec.hosts] == [
        ("h1", ("network", "compute")), ("h2", ("compute",)), ("h3", ("compute",))]
    assert LabSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("name", ["ab", "kvlab-1", "toolongname", "1abc", "a_b"])
def test_bad_lab_names(name: str) -> None:
    with pytest.raises(ValueError, match="lab name"):
        Lab(name)


@pytest.mark.parametrize("name", ["ul", "ext", "vm", "H1", "h-1", "averylonghost"])
def test_bad_host_names(name: str) -> None:
    with pytest.raises(ValueError, match="host name"):
        HostSpec(name)


def test_spec_rejects_repeated_hosts_and_no_hosts() -> None:
    with pytest.raises(ValueError, match="repeat"):
        LabSpec("kvlab", [HostSpec("h1"), HostSpec("h1")])
    with pytest.raises(ValueError, match="1 to 253"):
        LabSpec("kvlab", [])


def test_names_never_overlap_between_labs() -> None:
    """No lab's prefix is a prefix of another lab's namespace names (no '-' in lab names)."""
    a, b = "kvlab", "kvlab2"
    assert not n.host_ns(b, "h1").startswith(n.prefix(a))
    assert n.vm_ns(a, "x").startswith(n.prefix(a)) and n.ul_ns(a).startswith(n.prefix(a))
    assert len(n.ul_port("h" * 10)) <= 15
    assert len(unique_lab_name()) == 8 and unique_lab_name().startswith("kvtL")


def test_control_plane_argv(tmp_path: Path) -> None:
    assert server_argv(tmp_path)[1:] == ["-m", "kvnet", "server", "--store", f"sqlite:///{tmp_path}/kvnet.db",
                                         "--uds", f"{tmp_path}/kvnet.sock"]
    assert agent_argv(tmp_path, "h2")[1:] == ["-m", "kvnet", "agent", "--host", "h2", "--server",
                                              f"unix:{tmp_path}/kvnet.sock",
                                              "--sriov-emulation", f"{tmp_path}/sriov/h2.json"]
    assert server_url(Lab("kvlab", tmp_path)) == f"unix:{tmp_path}/kvlab/kvnet.sock"


def test_lab_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KVNET_LAB_DIR", str(tmp_path))
    assert Lab("kvlab").dir == tmp_path / "kvlab"
    monkeypatch.delenv("KVNET_LAB_DIR")
    assert Lab("kvlab").dir == n.DEFAULT_ROOT / "kvlab"
