"""The fake kernel stays honest: the same plans, applied by the Linux driver to the fake and to a real
namespace, read back (with the driver's own observe functions) as the same state."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from linux_fixtures import PREFIX

from kvnet.dataplane.linux import LinuxDriver, filter_objects
from kvnet.dataplane.linux.observe import observe
from kvnet.dataplane.linux.router_observe import observe_routers
from kvnet.plan import HostPlan
from kvnet.sys import netns
from kvnet.sys.bridge_netlink import NETLINK
from kvnet.sys.runner import SYSTEM, Runner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
from clouds import Cloud
from fake_kernel import FakeKernel

pytestmark = pytest.mark.root

# h1: a centralized router with its gateway and two FIPs, two networks; h2: a distributed router's
# compute host with a FIP holder (FIP namespace, its readdressing in the filter tables, pins). The
# VMs are in security groups with remote groups, one without port security.
GROUPS = {"rules": ((0, 1, 5), (2, 3), (4,)), "vm_groups": ((0,), (0, 1), (2,)), "open_vms": (2,)}
CASES = {"centralized-h1": (Cloud(2, ((0, 0), (1, 0), (0, 1)), "centralized", (0, 1), True, (0, 1), **GROUPS), "h1"),
         "distributed-h2": (Cloud(2, ((0, 1), (1, 1), (0, 2)), "distributed", (0, 1), True, (0,), **GROUPS), "h2")}


def taps(plan: HostPlan) -> set[str]:
    return {p.device for p in plan.ports} - set(plan.router_leg_devices().values())


def read_back(host: str, runner: Runner) -> dict[str, object]:
    seen = observe(host, runner)
    routers, unknown = observe_routers(host, runner)
    return {"links": {n: link for n, link in seen.links.items() if n != "lo"}, "fdb": seen.fdb, "neigh": seen.neigh,
            "pins": seen.pins, "routers": {n: vars(ns) for n, ns in routers.items()}, "unknown": unknown,
            "filters": vars(filter_objects.observe(runner, host))}


@pytest.fixture
def host() -> Iterator[str]:
    run_id = uuid.uuid4().hex[:6]
    name, peers = f"{PREFIX}{run_id}-h", f"{PREFIX}{run_id}-p"
    try:
        netns.add(name)
        netns.add(peers)
        yield name
    finally:
        netns.delete_with_prefix(f"{PREFIX}{run_id}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fake_reads_back_what_the_kernel_does(host: str, case: str) -> None:
    cloud, host_name = CASES[case]
    plans = [cloud.plan(host_name), Cloud(cloud.networks, cloud.vms[:1], None, (), False, ()).plan(host_name)]
    fake = FakeKernel()
    fake.add_netns(host)
    fake.add_device(host, "ex0")
    netns.add_veth("ex0", host, "w0", f"{host[:-2]}-p")
    for i, device in enumerate(sorted(set().union(*map(taps, plans)))):
        fake.add_device(host, device, mtu=1450)
        netns.add_veth(device, host, f"vm{i}", f"{host[:-2]}-p", mtu=1450)
    for plan in [*plans, plans[0]]:  # build, change, revert
        real = LinuxDriver(host, runner=SYSTEM, announce=lambda ns, entries: []).reconcile(plan)
        faked = LinuxDriver(host, runner=fake, announce=lambda ns, entries: [], limits=fake).reconcile(plan)
        assert real.ok and faked.ok, (real.errors, faked.errors)
        assert (faked.added, faked.changed, faked.removed) == (real.added, real.changed, real.removed)
        assert read_back(host, fake) == read_back(host, SYSTEM)
        assert fake.read(host) == NETLINK.read(host)  # the caps (nothing learned: no traffic here)
