"""The lab's naming scheme: every object a lab creates carries the lab's name.

    <root>/<lab>/                 lab directory (root: $KVNET_LAB_DIR or /tmp/kvnet-lab)
        state.json                hosts, VMs, processes (pid, pgid, cmdline) -> `down` after a crash
        logs/<process>.log        output of every process the lab started
        kvnet.sock, kvnet.db      the API server's unix socket and SQLite store
    <lab>-ul                      underlay switch namespace: bridge br-ul, one port <host>-ul per host
    <lab>-ext                     "internet" namespace: bridge br-ext (203.0.113.1/24), ports <host>-ex
    <lab>-<host>                  hypervisor host: ul0 (tunnel IP 192.0.2.<n>/24), ex0 (physnet-ext)
    <lab>-vm-<vm>                 VM: eth0, whose host end is port_device_name(port_id) in the host

Lab names have no '-', so `<lab>-` is a prefix no other lab's objects start with; `down` deletes
exactly the namespaces with that prefix. Lab names are lower case for people; tests use `kvtL…`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_LAB = "kvlab"
DEFAULT_ROOT = Path("/tmp/kvnet-lab")
LAB_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,7}$")
# Host and VM names end up in interface names (<host>-ul, at most 15 bytes) and namespace names.
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
VM_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
RESERVED_HOST_NAMES = frozenset({"ul", "ext", "vm"})

UL_BRIDGE = "br-ul"
EXT_BRIDGE = "br-ext"
HOST_UL_IF = "ul0"
HOST_EXT_IF = "ex0"
VM_IF = "eth0"
UNDERLAY_MTU = 1550  # 1500 tenant MTU + 50 bytes of VXLAN headroom
UNDERLAY_PREFIX = "192.0.2"  # TEST-NET-1: tunnel IPs 192.0.2.<n>/24
EXT_SERVER_CIDR = "203.0.113.1/24"  # TEST-NET-3: the "internet" test server on br-ext
EXT_PHYSNET = "physnet-ext"


def check_lab_name(name: str) -> str:
    if not LAB_NAME_RE.match(name):
        raise ValueError(f"lab name {name!r}: 3-8 letters/digits starting with a letter (e.g. kvlab)")
    return name


def check_host_name(name: str) -> str:
    if not HOST_NAME_RE.match(name) or name in RESERVED_HOST_NAMES:
        raise ValueError(f"host name {name!r}: 1-10 lower-case letters/digits, not ul/ext/vm (e.g. h1)")
    return name


def check_vm_name(name: str) -> str:
    if not VM_NAME_RE.match(name):
        raise ValueError(f"VM name {name!r}: 1-20 lower-case letters/digits/_ starting with a letter")
    return name


def lab_root() -> Path:
    return Path(os.environ.get("KVNET_LAB_DIR") or DEFAULT_ROOT)


def prefix(lab: str) -> str:
    return f"{lab}-"


def ul_ns(lab: str) -> str:
    return f"{lab}-ul"


def ext_ns(lab: str) -> str:
    return f"{lab}-ext"


def host_ns(lab: str, host: str) -> str:
    return f"{lab}-{host}"


def vm_ns(lab: str, vm: str) -> str:
    return f"{lab}-vm-{vm}"


def ul_port(host: str) -> str:
    return f"{host}-ul"


def ext_port(host: str) -> str:
    return f"{host}-ex"


def tunnel_ip(index: int) -> str:
    """Tunnel IP of the host at position `index` (0-based) in the spec."""
    if not 0 <= index < 253:
        raise ValueError("a lab has at most 253 hosts")
    return f"{UNDERLAY_PREFIX}.{index + 1}"
