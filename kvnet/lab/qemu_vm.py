"""Real guests in the lab: qemu (TCG here, KVM where usable) with one virtio-net NIC per port.

qemu runs inside the host's namespace (`ip netns exec <lab>-<host>`), in its own process group, recorded
by the lab's Supervisor as `vm-<name>` (so `kvnet lab down` stops it); its console is that process's
log. It creates each NIC's tap there under the port's device name, so the agent plugs it like any port.
A direct (SR-IOV) NIC's tap is not plugged by the agent: the lab wires it to the port's emulated VF
(`kvnet.lab.sriov.attach_vf`), standing in for the PCI passthrough of a real VF.

    rec = create_qemu_vm(lab, "g1", "h1", [GuestNic(port, subnet, mtu)], paused=True)
    ...wait until the agent reports the ports ACTIVE...
    resume(lab, "g1"); wait_ready(lab, "g1")
    guest_exec(lab, "g1", "ping -c1 10.0.0.12")
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvnet.lab import names as n
from kvnet.lab.lab import Lab, LabError
from kvnet.lab.procs import POLL_S
from kvnet.lab.vm import port_addresses
from kvnet.plan import port_device_name
from kvnet.sys.cmd import run
from kvnet.virt.console import guest_run
from kvnet.virt.guest import READY_MARKER, GuestUnavailable, NicConfig, ensure_image, kernel_cmdline
from kvnet.virt.qemu import QemuNic, accelerator, qemu_argv, qemu_binary, qmp

if TYPE_CHECKING:
    from kvnet.client import Client

KIND = "qemu"
BOOT_DEADLINE_S = 60.0  # TCG on a loaded 2-core machine; ~3 s to network-up when idle


@dataclass(frozen=True)
class GuestNic:
    """One NIC: the API's port and subnet dicts, the network MTU, and whether the default route uses it."""

    port: dict[str, Any]
    subnet: dict[str, Any]
    mtu: int
    default_route: bool = True


def proc_name(vm: str) -> str:
    return f"vm-{vm}"


def qemu_available() -> str | None:
    """None when guests can run here, else why not (for a test's skip reason)."""
    if qemu_binary() is None:
        return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing (qemu cannot create taps)"
    try:
        ensure_image()
    except GuestUnavailable as exc:
        return f"no guest image: {exc}"
    return None


def is_qemu(record: dict[str, Any]) -> bool:
    return record.get("kind") == KIND


def create_qemu_vm(lab: Lab, name: str, host: str, nics: Sequence[GuestNic], *, paused: bool = True,
                   memory_mb: int = 256) -> dict[str, Any]:
    """Start guest `name` on `host` with one NIC per port (eth0, eth1, … in that order); returns its record.

    Returns once qemu has created every tap. With `paused` the CPU waits for `resume`."""
    n.check_vm_name(name)
    hns = lab.host_ns(host)
    if name in lab.vms():
        raise LabError(f"lab {lab.name} already has a VM {name!r}")
    if not nics:
        raise LabError(f"VM {name} needs at least one NIC")
    image = ensure_image()
    configs, qnics = [], []
    gateway_done = False
    for i, nic in enumerate(nics):
        addrs = port_addresses(nic.port, nic.subnet)
        if not addrs:
            raise LabError(f"port {nic.port['id']} has no fixed IP in subnet {nic.subnet['cidr']}")
        gateway = nic.subnet.get("gateway_ip") if nic.default_route and not gateway_done else None
        gateway_done = gateway_done or bool(gateway)
        configs.append(NicConfig(f"eth{i}", addrs[0], gateway, nic.mtu))
        qnics.append(QemuNic(port_device_name(nic.port["id"]), nic.port["mac_address"], nic.mtu))
    shell, qmp_sock = lab.dir / f"{name}.shell", lab.dir / f"{name}.qmp"
    first = nics[0]
    record = {
        # What every lab VM record has (status, delete): the first NIC.
        "name": name, "host": host, "namespace": hns, "port_id": first.port["id"], "device": qnics[0].tap,
        "mac": first.port["mac_address"], "ips": [c.address for c in configs], "mtu": first.mtu,
        "gateway": next((c.gateway for c in configs if c.gateway), None),
        # qemu guests only.
        "kind": KIND, "port_ids": [nic.port["id"] for nic in nics], "devices": [q.tap for q in qnics],
        "proc": proc_name(name), "shell": str(shell), "qmp": str(qmp_sock), "accel": accelerator(),
        "image": image.key,
    }
    with lab.state.update() as st:  # recorded first, so `down` finds a half-started VM
        st["vms"][name] = record
    try:
        argv = qemu_argv(image, qnics, kernel_cmdline(configs, hostname=name), shell_socket=shell,
                         qmp_socket=qmp_sock, paused=paused, memory_mb=memory_mb, accel=record["accel"], name=name)
        lab.procs.start(proc_name(name), argv, netns=hns)
        _wait_for_taps(lab, name, hns, record["devices"])
    except BaseException:
        delete_qemu_vm(lab, name)
        raise
    return record


def _wait_for_taps(lab: Lab, name: str, hns: str, taps: list[str], deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while True:
        have = run(["ip", "-n", hns, "-o", "link", "show"]).stdout
        if all(f": {tap}:" in have for tap in taps):
            return
        if not lab.procs.alive(proc_name(name)):
            raise LabError(f"qemu for VM {name} exited:\n{lab.procs.log_tail(proc_name(name))}")
        if time.monotonic() > end:
            raise LabError(f"qemu for VM {name} created no tap {taps} in {deadline_s}s")
        time.sleep(POLL_S)


def _record(lab: Lab, name: str) -> dict[str, Any]:
    record = lab.vms().get(name)
    if record is None or not is_qemu(record):
        raise LabError(f"lab {lab.name} has no qemu VM {name!r}")
    return record


def resume(lab: Lab, name: str) -> None:
    """Start the CPU of a guest created paused (QMP `cont`)."""
    qmp(Path(_record(lab, name)["qmp"]), "cont")


def console(lab: Lab, name: str) -> str:
    rec = lab.procs.record(proc_name(name))
    return Path(rec.log).read_text(errors="replace") if rec else ""


def wait_ready(lab: Lab, name: str, deadline_s: float = BOOT_DEADLINE_S) -> float:
    """Seconds until the guest printed its ready marker (modules loaded, NICs configured)."""
    _record(lab, name)
    start = time.monotonic()
    while READY_MARKER not in console(lab, name):
        if not lab.procs.alive(proc_name(name)):
            raise LabError(f"VM {name} stopped while booting:\n{lab.procs.log_tail(proc_name(name), 40)}")
        if time.monotonic() - start > deadline_s:
            raise TimeoutError(f"VM {name} not ready after {deadline_s}s:\n{lab.procs.log_tail(proc_name(name), 40)}")
        time.sleep(POLL_S)
    return time.monotonic() - start


def guest_exec(lab: Lab, name: str, command: str | Sequence[str], *, timeout: float = 30.0,
               check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command in the guest through its serial command channel."""
    line = command if isinstance(command, str) else " ".join(shlex.quote(c) for c in command)
    return guest_run(Path(_record(lab, name)["shell"]), line, timeout=timeout, check=check)


def guest_ping(lab: Lab, name: str, ip: str, count: int = 1, timeout: int = 1, interval: float = 0.2) -> bool:
    """True if the guest got at least one echo reply (busybox ping)."""
    proc = guest_exec(lab, name, f"ping -c {count} -W {timeout} -i {interval} {shlex.quote(ip)}",
                      timeout=count * (timeout + interval) + 15)
    return proc.returncode == 0


def guest_ping_until(lab: Lab, name: str, ip: str, deadline_s: float) -> float | None:
    """Milliseconds until the guest's first echo reply from `ip` (one ping every 0.1 s), None if none."""
    start = time.monotonic()
    cmd = f"ping -c 1 -i 0.1 -w {max(1, round(deadline_s))} {shlex.quote(ip)}"
    proc = guest_exec(lab, name, cmd, timeout=deadline_s + 15)
    return (time.monotonic() - start) * 1000 if proc.returncode == 0 else None


def boot_guest(lab: Lab, client: Client, name: str, host: str, nics: Sequence[GuestNic],
               deadline_s: float = BOOT_DEADLINE_S) -> dict[str, Any]:
    """What Nova does: start the guest paused with its ports' NICs, wait until the agent reports every
    port ACTIVE (bridged ports plugged, direct ports' VFs configured), give direct NICs their VF, resume,
    and wait for the guest to be up. The record gets `wired_s` (qemu started -> every port ACTIVE) and
    `boot_s` (resume -> network up in the guest)."""
    from kvnet.lab.demo import wait_port_active
    from kvnet.lab.sriov import attach_vf

    start = time.monotonic()
    record = create_qemu_vm(lab, name, host, nics, paused=True)
    try:
        for nic, tap in zip(nics, record["devices"], strict=True):
            port = wait_port_active(client, nic.port["id"], deadline_s)
            if port["vnic_type"] == "direct":
                attach_vf(lab, host, tap, port["binding_profile"])
        wired_s = time.monotonic() - start
        resume(lab, name)
        boot_s = wait_ready(lab, name, deadline_s)
    except BaseException:
        delete_qemu_vm(lab, name)
        raise
    times = {"wired_s": round(wired_s, 2), "boot_s": round(boot_s, 2)}
    with lab.state.update() as st:
        st["vms"][name].update(times)
    return {**record, **times}


def delete_qemu_vm(lab: Lab, name: str) -> None:
    """Stop qemu (its process group; the taps go with it) and forget the VM."""
    record = lab.vms().get(name)
    lab.procs.stop(proc_name(name))
    if record:
        for key in ("shell", "qmp"):
            Path(record[key]).unlink(missing_ok=True)
    with lab.state.update() as st:
        st["vms"].pop(name, None)
