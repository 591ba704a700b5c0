"""Helpers for tests that need a lab: unique names, temporary lab roots, guaranteed cleanup."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, boot_vm
from kvnet.lab.demo_routing import RoutedCloud, add_fip, build_routed_cloud
from kvnet.lab.lab import Lab
from kvnet.lab.spec import LabSpec, default_spec
from kvnet.sys import netns

TEST_PREFIX = "kvtL"


def unique_lab_name() -> str:
    """`kvtL` + 4 random hex digits: 8 characters, unique across concurrent test runs."""
    return f"{TEST_PREFIX}{secrets.token_hex(2)}"


@contextlib.contextmanager
def temp_root() -> Iterator[Path]:
    """A short directory under /tmp (unix socket paths must stay under 108 bytes), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=TEST_PREFIX, dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def force_clean(lab: Lab) -> None:
    """Down, then make sure: no namespace of the lab survives even if `down` itself failed."""
    try:
        lab.down()
    finally:
        netns.delete_with_prefix(n.prefix(lab.name))


@contextlib.contextmanager
def running_lab(spec: LabSpec | None = None, *, hosts: int = 3, control_plane: bool = False) -> Iterator[Lab]:
    """A lab with a unique name in a temporary root; removed completely afterwards, also on failure."""
    spec = spec or default_spec(unique_lab_name(), hosts)
    with temp_root() as root:
        lab = Lab(spec.name, root)
        try:
            lab.up(spec, control_plane=control_plane)
            yield lab
        finally:
            force_clean(lab)


@dataclass
class Routed:
    """A running lab with one router of `mode`, its VMs booted and floating IPs on some (`fips`: vm -> FIP)."""

    lab: Lab
    client: Client
    mode: str
    cloud: RoutedCloud
    fips: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def routed_lab(mode: str, vms: Sequence[DemoVM], with_fip: Sequence[str],
               spec: LabSpec | None = None) -> Iterator[Routed]:
    """`running_lab` with a server and agents, the routed cloud of `kvnet.lab.demo_routing`, `vms`
    booted and a floating IP for each VM named in `with_fip`."""
    with running_lab(spec, control_plane=True) as lab, Client(control.server_url(lab)) as client:
        cloud = build_routed_cloud(client, mode)
        for vm in vms:
            boot_vm(lab, client, vm)
        yield Routed(lab, client, mode, cloud, {vm: add_fip(client, cloud, vm) for vm in with_fip})
