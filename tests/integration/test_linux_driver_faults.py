"""The Linux driver on a real kernel when a read fails: unknown is never absent.

A wrapper named like the tool (`ip`, `bridge`) first in PATH fails the calls whose arguments contain a
given text, then hands everything else to the real tool: the kernel's state is real, only the read fails.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from linux_fixtures import PREFIX

from kvnet.agent.status import port_states
from kvnet.dataplane.linux import LinuxDriver
from kvnet.dataplane.linux.observe import observe
from kvnet.plan import HostPlan, NetworkPlan, PortPlan, RouterLeg, RouterPlan, bridge_name, port_device_name
from kvnet.sys import netns
from kvnet.sys.cmd import run

pytestmark = pytest.mark.root
FailReads = Callable[[str, str], Path]

NET = "0badc0de-0000-4000-8000-000000000001"
ROUTER = "0badbeef-0000-4000-8000-000000000002"
LEG_PORT = "0badf00d-0000-4000-8000-000000000003"
LEG = RouterLeg("qr-0badf00d00", port_device_name(LEG_PORT), NET, "fa:16:3e:00:00:01", 1450, ("10.0.0.1/24",))
PLAN = HostPlan("h1", "192.0.2.1", True, True,
                (NetworkPlan(NET, "vxlan", 1001, 1450, bridge_name(NET), "kvx-0badc0de00", None),),
                (PortPlan(LEG_PORT, NET, LEG.mac, ("10.0.0.1",), LEG.device, 1450),),
                routers=(RouterPlan(ROUTER, "dvr", legs=(LEG,)),))


@pytest.fixture
def host() -> Iterator[str]:
    run_id = uuid.uuid4().hex[:6]
    name = f"{PREFIX}{run_id}-host"
    try:
        netns.add(name)
        yield name
    finally:
        netns.delete_with_prefix(f"{PREFIX}{run_id}")


@pytest.fixture
def fail_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FailReads:
    """fail_reads(tool, text): the next call of `tool` whose arguments contain `text` fails (once)."""

    def install(tool: str, text: str) -> Path:
        real = shutil.which(tool)
        assert real is not None
        flag = tmp_path / f"{tool}.failed"
        wrapper = tmp_path / tool
        wrapper.write_text(f'#!/bin/bash\ncase " $* " in *"{text}"*)\n  if [ ! -e {flag} ]; then touch {flag}; '
                           f'echo "injected: cannot read" >&2; exit 1; fi;;\nesac\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
        return flag

    return install


def test_an_unreadable_router_namespace_is_neither_deleted_nor_recreated(host: str, fail_reads: FailReads) -> None:
    assert LinuxDriver(host).reconcile(PLAN).ok
    router_ns = f"{host}-kvr-0badbeef00"
    inode = os.stat(f"/run/netns/{router_ns}").st_ino
    flag = fail_reads("ip", "route show")
    result = LinuxDriver(host).reconcile(PLAN)
    assert flag.exists(), "the read was not attempted"
    assert result.unknown and os.stat(f"/run/netns/{router_ns}").st_ino == inode, "the namespace was recreated"
    assert "10.0.0.1/24" in run(["ip", "-n", router_ns, "addr", "show", LEG.name]).stdout
    assert LEG_PORT not in port_states(PLAN, result)  # neither ACTIVE nor DOWN: left as it was
    again = LinuxDriver(host).reconcile(PLAN)
    assert again.ok and again.total_changes == 0 and port_states(PLAN, again)[LEG_PORT].status == "ACTIVE"


def test_a_failing_listing_never_raises_and_deletes_nothing(host: str, fail_reads: FailReads) -> None:
    assert LinuxDriver(host).reconcile(PLAN).ok
    before = observe(host).owned_links()
    fail_reads("bridge", "fdb show")
    result = LinuxDriver(host).reconcile(HostPlan("h1", "192.0.2.1", True, True, routers=PLAN.routers))
    assert result.unknown and any(f.kind == "l2" and f.observe for f in result.failures)
    assert observe(host).owned_links() == before  # the L2 objects the new plan lacks are still there
