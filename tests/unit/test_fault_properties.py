"""Property tests of the Linux driver over the fake kernel with fault flags (no root).

Plans are compiled (compile_host, as the agent does) from generated clouds: 1-3 VXLAN networks, VM ports
on three hosts, and optionally a centralized or distributed router with interfaces, a gateway on a
flat external network and floating IPs. The host under test is h1 (the network node). Properties:
- applying twice changes nothing;
- a change and its revert give the kernel state the first plan gave;
- a failure injected on any one object leaves exactly the ports that depend on it not ACTIVE, and the
  next pass repairs them (to the state a fault-free pass gives);
- a read injected to fail deletes nothing it covers, and its ports are not reported at all.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvnet.agent.status import port_states
from kvnet.dataplane.linux import LinuxDriver
from kvnet.plan import HostPlan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
from clouds import Cloud, clouds
from fake_kernel import FakeKernel

HOST_NS = "kvtF-h1"
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def taps(plan: HostPlan) -> set[str]:
    """The devices the hypervisor creates: every port's but the router legs' (the driver makes those)."""
    return {p.device for p in plan.ports} - set(plan.router_leg_devices().values())


def kernel(*plans: HostPlan) -> FakeKernel:
    fake = FakeKernel()
    fake.add_netns(HOST_NS)
    fake.add_device(HOST_NS, "ex0")
    for device in set().union(*(taps(p) for p in plans)):
        fake.add_device(HOST_NS, device, mtu=1450)
    return fake


def driver(fake: FakeKernel) -> LinuxDriver:
    return LinuxDriver(HOST_NS, runner=fake, announce=lambda ns, entries: [], limits=fake)


@given(clouds())
@PROPERTY_SETTINGS
def test_applying_twice_changes_nothing(cloud: Cloud) -> None:
    plan = cloud.plan()
    fake = kernel(plan)
    first = driver(fake).reconcile(plan)
    assert first.ok, first.errors
    assert {s.status for s in port_states(plan, first).values()} <= {"ACTIVE"}
    state = fake.state()
    again = driver(fake).reconcile(plan)
    assert again.ok and again.total_changes == 0, (again.added, again.changed, again.removed)
    assert fake.state() == state


@given(clouds(), clouds())
@PROPERTY_SETTINGS
def test_change_then_revert_restores_the_same_kernel_state(before: Cloud, after: Cloud) -> None:
    plan_a, plan_b = before.plan(), after.plan()
    fake = kernel(plan_a, plan_b)
    assert driver(fake).reconcile(plan_a).ok
    state = fake.state()
    assert driver(fake).reconcile(plan_b).ok
    reverted = driver(fake).reconcile(plan_a)
    assert reverted.ok, reverted.errors
    assert fake.state() == state


_OBJECT_DEVICE = re.compile(r"^link add (?:name )?(\S+)|\bdev (\S+)")


def dependents(plan: HostPlan, line: str) -> set[str]:
    """The ports a batch line's object serves, worked out from the line's text and the device it acts on
    (`link add [name] X`, `dev X`): inside a router namespace (a leg, or the veth that makes one), the
    router's legs' ports and the FIP holders redirected to them; a network's bridge, tunnel or uplink,
    the network's ports; a tap or a leg's host end on its bridge, its port."""
    match = _OBJECT_DEVICE.search(line)
    device = next(g for g in match.groups() if g) if match else ""
    for router in plan.routers:
        if any(device == leg.name or (device == leg.device and "type veth" in line) for leg in router.legs):
            macs = {leg.mac for leg in router.legs}
            legs = {leg.device for leg in router.legs}
            return {p.port_id for p in plan.ports if p.device in legs or any(m in macs for _, m in p.gateway_redirects)}
    for net in plan.networks:
        if device in (net.bridge, net.tunnel, net.physnet_interface):
            return {p.port_id for p in plan.ports if p.network_id == net.network_id}
    return {p.port_id for p in plan.ports if p.device == device}


@given(clouds(), st.integers(0, 10_000))
@PROPERTY_SETTINGS
def test_a_failed_object_leaves_exactly_its_ports_not_active_and_the_next_pass_repairs_them(
        cloud: Cloud, pick: int) -> None:
    plan = cloud.plan()
    scratch = kernel(plan)
    driver(scratch).reconcile(plan)
    written = [line for line in scratch.log if not line.startswith(("ip ", "bridge ", "nft "))
               and not line.startswith(("table", "delete table", "  ", "}"))]
    perfect = scratch.state()
    if not written:
        return
    line = written[pick % len(written)]
    fake = kernel(plan)
    fake.fail(f"^{re.escape(line)}$", times=None)  # refused for the whole pass (a neighbour batch retries)
    failed = driver(fake).reconcile(plan)
    fake.faults.clear()
    assert not failed.ok
    states = port_states(plan, failed)
    not_active = {p for p, s in states.items() if s.status != "ACTIVE"}
    assert not_active == dependents(plan, line), (line, failed.errors)
    assert all(states[p].status == "ERROR" and states[p].messages for p in not_active)
    repaired = driver(fake).reconcile(plan)
    assert repaired.ok, repaired.errors
    assert {s.status for s in port_states(plan, repaired).values()} <= {"ACTIVE"}
    assert fake.state() == perfect


def l2_objects(state: dict) -> dict:
    """The host's links, FDB, neighbours and pins, but the router legs' host ends: those go with their
    router namespace, which the router manager (its own reads did not fail) may delete."""
    host = state[HOST_NS]
    legs = {name for name, link in host["links"].items() if link["peer"]}
    return {"links": {n: v for n, v in host["links"].items() if n not in legs}, "fdb": host["fdb"],
            "neigh": host["neigh"], "pins": {p for p in host["pins"] if p[0] not in legs}}


READS = {  # a listing -> what it covers: nothing of that may change when it fails
    r"-j -d link show$": l2_objects,
    r"-j fdb show$": l2_objects,
    r"-j neigh show nud permanent$": lambda s: s[HOST_NS]["neigh"],
    r"-j netns list$": lambda s: {ns: v for ns, v in s.items() if "-kvr-" in ns},
    r"kvr-.* -j route show": lambda s: {ns: v for ns, v in s.items() if "-kvr-" in ns},
    r"^ip netns exec kvtF-h1 nft list table netdev": lambda s: s[HOST_NS]["nft"],
}


@given(clouds(), st.sampled_from(sorted(READS)))
@PROPERTY_SETTINGS
def test_a_failed_read_deletes_nothing_it_covers_and_reports_its_ports_nowhere(cloud: Cloud, read: str) -> None:
    plan = cloud.plan()
    fake = kernel(plan)
    assert driver(fake).reconcile(plan).ok
    covered = READS[read](fake.state())
    fake.fail(read, times=None)
    empty = HostPlan(plan.host, plan.tunnel_ip, plan.l2_population, plan.arp_responder)
    result = driver(fake).reconcile(empty)  # a plan without anything: every owned object would go
    if not any(re.search(read, line) for line in fake.log[-200:]):
        return  # this pass had no reason to read it (e.g. no router namespace, no redirect table)
    assert result.unknown
    assert READS[read](fake.state()) == covered
    unknown = set(result.port_failures(observe=True))
    assert not unknown & {p for p, s in port_states(plan, result).items() if s.status == "ACTIVE"}
