"""A host where the stateful rules cannot see bridged traffic (br_netfilter off and not to be turned on)
must not forward its filtered ports' frames past them: they are left out of the known ports (dropped)
and reported ERROR with the reason; ports without port security go on (issue #14, fail closed)."""

from __future__ import annotations

import sys
from pathlib import Path

from kvnet.agent.status import port_states
from kvnet.dataplane.linux import LinuxDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
from clouds import Cloud
from fake_kernel import FakeKernel

HOST_NS = "kvtF-h1"
CLOUD = Cloud(1, ((0, 0), (0, 0)), None, (0,), False, (), rules=((0,), (), ()), vm_groups=((0,),), open_vms=(1,))


def known_ports(fake: FakeKernel) -> set[str]:
    _, elements = fake.ns[HOST_NS].filters.tables[("bridge", "kvnet")].containers["from_port"]
    return {key.strip('"') for key in elements}


def test_without_br_netfilter_filtered_ports_forward_nothing_and_say_why() -> None:
    plan = CLOUD.plan()
    filtered, open_port = plan.filters[0].device, next(p for p in plan.ports if p.device != plan.filters[0].device)
    fake = FakeKernel()
    fake.add_netns(HOST_NS)
    for port in plan.ports:
        fake.add_device(HOST_NS, port.device, mtu=1450)
    fake.fail(r"sysctl -n net\.bridge", times=None, message="sysctl: cannot stat /proc/sys/net/bridge/...")
    driver = LinuxDriver(HOST_NS, runner=fake, announce=lambda ns, entries: [], limits=fake)
    result = driver.reconcile(plan)
    states = port_states(plan, result)
    assert states[plan.filters[0].port_id].status == "ERROR"
    assert "br_netfilter is not active" in states[plan.filters[0].port_id].messages[0]
    assert states[open_port.port_id].status == "ACTIVE"
    assert filtered not in known_ports(fake) and open_port.device in known_ports(fake)

    fake.faults.clear()  # br_netfilter back: the next pass lets the port in
    result = driver.reconcile(plan)
    assert port_states(plan, result)[plan.filters[0].port_id].status == "ACTIVE"
    assert filtered in known_ports(fake)
