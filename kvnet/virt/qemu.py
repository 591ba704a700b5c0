"""qemu-system-x86_64 for the lab's guests: the command line, the accelerator, and QMP `cont`.

Each NIC is `-netdev tap,ifname=<device>,script=no,downscript=no,vhost=off` + `-device virtio-net-pci,mac=…`:
qemu creates the tap itself, in the network namespace it runs in (the lab starts it with
`ip netns exec <host namespace>`), under the name the agent expects for the port
(`port_device_name`), so the agent plugs it exactly like libvirt's `<target dev='kvt-…'/>` tap.
`host_mtu` tells the guest driver the network MTU (virtio's VIRTIO_NET_F_MTU, libvirt's `<mtu size=…>`).

Guests start paused (`-S`) when asked: the taps exist at once, and `resume` (QMP `cont`) starts the
CPU once the ports are wired — what Nova does while it waits for Neutron's vif-plugged event.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvnet.virt.guest import GuestImage

QEMU = "qemu-system-x86_64"
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
DEFAULT_MEMORY_MB = 256
QBOOT = Path("/usr/share/qemu/qboot.rom")


@dataclass(frozen=True)
class QemuNic:
    tap: str  # created by qemu in its namespace, e.g. kvt-0123456789
    mac: str
    mtu: int | None = None


def qemu_binary() -> str | None:
    return shutil.which(QEMU)


@functools.cache
def kvm_usable(dev: str = "/dev/kvm") -> bool:
    """True when /dev/kvm answers KVM_CREATE_VM and qemu can set up a `-cpu host` vCPU with it.

    Present but unusable happens (here: nested KVM whose vCPU setup fails on an MSR and aborts qemu),
    so after the ioctl check a paused qemu is started and asked to quit (~50 ms, once per process)."""
    if not _kvm_ioctls_work(dev) or qemu_binary() is None:
        return False
    probe = [qemu_binary() or QEMU, "-machine", "pc,accel=kvm", "-cpu", "host", "-m", "64", "-nodefaults",
             "-no-user-config", "-display", "none", "-S", "-qmp", "stdio"]
    try:
        proc = subprocess.run(probe, input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
                              capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def _kvm_ioctls_work(dev: str) -> bool:
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, KVM_GET_API_VERSION) != 12:
            return False
        vm_fd = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def accelerator() -> str:
    """$KVNET_QEMU_ACCEL (kvm|tcg), else kvm when usable, else tcg."""
    forced = os.environ.get("KVNET_QEMU_ACCEL")
    if forced:
        return forced
    return "kvm" if kvm_usable() else "tcg"


def qemu_argv(image: GuestImage, nics: Sequence[QemuNic], cmdline: str, *, shell_socket: Path,
              qmp_socket: Path, paused: bool = False, memory_mb: int = DEFAULT_MEMORY_MB,
              accel: str | None = None, name: str = "") -> list[str]:
    """The guest's command line: console on stdio (ttyS0), command channel on a unix socket (ttyS1)."""
    accel = accel or accelerator()
    argv = [qemu_binary() or QEMU, "-name", name or "kvnet-guest", "-machine", f"pc,accel={accel}",
            "-cpu", "host" if accel == "kvm" else "max", "-m", str(memory_mb), "-smp", "1",
            "-nographic", "-nodefaults", "-no-user-config", "-no-reboot", "-monitor", "none",
            "-serial", "stdio", "-serial", f"unix:{shell_socket},server=on,wait=off",
            "-qmp", f"unix:{qmp_socket},server=on,wait=off",
            *_firmware(), "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", cmdline]
    for i, nic in enumerate(nics):
        dev = f"virtio-net-pci,netdev=n{i},mac={nic.mac},addr={i + 3:#x},romfile="
        if nic.mtu:
            dev += f",host_mtu={nic.mtu}"
        argv += ["-netdev", f"tap,id=n{i},ifname={nic.tap},script=no,downscript=no,vhost=off", "-device", dev]
    if paused:
        argv.append("-S")
    return argv


def _firmware() -> list[str]:
    """qboot (a minimal firmware that boots -kernel directly) when installed: ~1 s less than SeaBIOS under TCG."""
    return ["-bios", QBOOT.name] if QBOOT.exists() else []


def qmp(qmp_socket: Path, command: str, arguments: dict[str, Any] | None = None,
        timeout: float = 10.0) -> dict[str, Any]:
    """Run one QMP command (after the capabilities handshake) and return its answer."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        _connect(sock, qmp_socket, timeout)
        reader = sock.makefile("r")
        _read_reply(reader, key="QMP")
        sock.sendall(json.dumps({"execute": "qmp_capabilities"}).encode() + b"\n")
        _read_reply(reader)
        body: dict[str, Any] = {"execute": command}
        if arguments:
            body["arguments"] = arguments
        sock.sendall(json.dumps(body).encode() + b"\n")
        return _read_reply(reader)


def _connect(sock: socket.socket, path: Path, timeout: float) -> None:
    """qemu creates its sockets while starting: poll until it listens (or the deadline passes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(str(path))
            return
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"qemu socket {path} not listening after {timeout}s") from None
            time.sleep(0.02)


def _read_reply(reader: Any, key: str | None = None) -> dict[str, Any]:
    """The next line that is a reply (`return`/`error`, or `key`); asynchronous events are skipped."""
    while True:
        line = reader.readline()
        if not line:
            raise ConnectionError("QMP closed the connection")
        msg = json.loads(line)
        if key and key in msg:
            return msg
        if "error" in msg:
            raise RuntimeError(f"QMP error: {msg['error'].get('desc', msg['error'])}")
        if "return" in msg:
            return msg
