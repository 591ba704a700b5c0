"""Looking at a running lab: run commands in hosts, ping from VMs, capture on the underlay switch."""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from kvnet.lab import names as n
from kvnet.lab.arp_census import BPF as ARP_CENSUS_BPF
from kvnet.lab.arp_census import ArpCensus, read_pcap
from kvnet.lab.lab import Lab, LabError
from kvnet.lab.procs import POLL_S
from kvnet.sys.cmd import in_netns, run

PACKET_LINE = re.compile(r"^\d+\.\d+ ")  # tcpdump -tt: every packet line starts with epoch seconds
_capture_ids = itertools.count(1)


def host_exec(lab: Lab, host: str, argv: Sequence[str], *, check: bool = True,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run(argv, netns=lab.host_ns(host), check=check, timeout=timeout)


def _vm_ns(lab: Lab, vm: str) -> str:
    if vm not in lab.vms():
        raise LabError(f"lab {lab.name} has no VM {vm!r}")
    return n.vm_ns(lab.name, vm)


def ping(lab: Lab, vm: str, ip: str, count: int = 1, timeout: float = 1, size: int | None = None,
         dont_fragment: bool = False) -> bool:
    """True if `vm` got at least one echo reply from `ip`. `size` is the ICMP payload (ping -s);
    `dont_fragment` sets DF (ping -M do), so an oversized packet fails instead of fragmenting."""
    argv = ["ping", "-n", "-q", "-c", str(count), "-W", str(timeout)]
    if count > 1:
        argv += ["-i", "0.05"]
    if size is not None:
        argv += ["-s", str(size)]
    if dont_fragment:
        argv += ["-M", "do"]
    proc = run([*argv, ip], netns=_vm_ns(lab, vm), check=False, timeout=count * (timeout + 0.1) + 5)
    return proc.returncode == 0


def arp_replies(lab: Lab, vm: str, ip: str, count: int, deadline_s: float = 4) -> list[str]:
    """The replier's MAC of each answer `vm` gets to `count` ARP requests for `ip`. arping (iputils)
    broadcasts until the first answer, then asks that MAC by unicast, as a guest re-checking a cached
    neighbour does."""
    return arp_replies_ns(_vm_ns(lab, vm), "eth0", ip, count, deadline_s)


def arp_replies_ns(netns: str, device: str, ip: str, count: int, deadline_s: float = 4) -> list[str]:
    """`arp_replies` from any lab namespace, asking through `device`."""
    argv = ["arping", "-c", str(count), "-w", str(math.ceil(deadline_s)), "-I", device, ip]  # one per second
    proc = run(argv, netns=netns, check=False, timeout=deadline_s + 5)
    return [mac.lower() for mac in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]+)\]", proc.stdout)]


def ping_until(lab: Lab, vm: str, ip: str, deadline_s: float) -> float | None:
    """Milliseconds from now until `vm` gets its first echo reply from `ip`; None if none by the deadline.

    One ping process sends a request every 20 ms and exits at the first reply (resolution 20 ms).
    """
    return ping_until_ns(_vm_ns(lab, vm), ip, deadline_s)


def ping_until_ns(netns: str, ip: str, deadline_s: float) -> float | None:
    """`ping_until` from any lab namespace (e.g. `<lab>-ext`, the "internet")."""
    argv = in_netns(["ping", "-n", "-q", "-c", "1", "-i", "0.02", "-w", str(math.ceil(deadline_s)), ip], netns)
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=deadline_s)
    except subprocess.TimeoutExpired:
        return None
    return (time.monotonic() - start) * 1000 if proc.returncode == 0 else None


def arp_capture(lab: Lab) -> UnderlayCapture:
    """Every frame on the underlay switch that is ARP, or could carry ARP inside a tunnel: use as
    `with arp_capture(lab) as cap: ...` then `cap.arp_census()`."""
    return UnderlayCapture(lab, ARP_CENSUS_BPF, pcap=True)


class UnderlayCapture:
    """tcpdump on the underlay switch (`<lab>-ul`, br-ul) while the block runs; count matching frames.

        with UnderlayCapture(lab, "arp and ether broadcast") as cap:
            ...
        cap.count

    Ready (tcpdump printed "listening on") when `__enter__` returns; supervised like any lab process
    (so `down` stops it even if the caller crashed) and stopped by process group on exit. With `pcap`
    the frames themselves are kept (`frames()`), for decoding what is inside tunnels (`arp_census`).
    """

    def __init__(self, lab: Lab, bpf_filter: str, *, interface: str = n.UL_BRIDGE,
                 ready_timeout: float = 10.0, netns: str | None = None, pcap: bool = False,
                 inbound: bool = False) -> None:
        self.lab = lab
        self.netns = netns or n.ul_ns(lab.name)  # another lab namespace, e.g. <lab>-ext with br-ext
        self.bpf_filter = bpf_filter
        self.interface = interface
        self.inbound = inbound  # only what arrives on `interface` (tcpdump -Q in; the `inbound` filter
        # keyword let nothing through here)
        self.ready_timeout = ready_timeout
        self.name = f"capture-{os.getpid()}-{next(_capture_ids)}"
        self._lines: list[str] | None = None  # set when stopped
        self._frames: list[bytes] | None = None  # set when stopped, with pcap
        self._log: Path | None = None
        self._pcap: Path | None = lab.dir / f"{self.name}.pcap" if pcap else None

    def __enter__(self) -> UnderlayCapture:
        argv = ["tcpdump", "-i", self.interface, "-n", "-e", "-tt", "-l", "--immediate-mode"]
        if self.inbound:
            argv += ["-Q", "in"]
        if self._pcap is not None:
            argv += ["-U", "-w", str(self._pcap)]  # -U: each frame written as it comes
        argv += self.bpf_filter.split()
        rec = self.lab.procs.start(self.name, argv, netns=self.netns)
        self._log = Path(rec.log)
        deadline = time.monotonic() + self.ready_timeout
        while "listening on" not in self._read():
            if not self.lab.procs.alive(self.name):
                raise LabError(f"tcpdump {self.bpf_filter!r} failed:\n{self._read()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"tcpdump not listening after {self.ready_timeout}s")
            time.sleep(POLL_S)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _read(self) -> str:
        try:
            return self._log.read_text(errors="replace") if self._log else ""
        except FileNotFoundError:
            return ""

    def lines(self) -> list[str]:
        """The captured frames, one tcpdump line each (with -e: MAC addresses first)."""
        if self._lines is not None:
            return self._lines
        return self._parse()

    @property
    def count(self) -> int:
        return len(self.frames()) if self._pcap is not None else len(self.lines())

    def frames(self) -> list[bytes]:
        """The captured frames (a `pcap` capture only)."""
        if self._frames is not None:
            return self._frames
        assert self._pcap is not None, "frames() needs UnderlayCapture(..., pcap=True)"
        return read_pcap(self._pcap) if self._pcap.exists() else []

    def arp_census(self) -> ArpCensus:
        """Outer (host) ARP and ARP inside the tunnels among the captured frames (a `pcap` capture)."""
        return ArpCensus.of(self.frames())

    def wait_for(self, count: int, deadline_s: float) -> bool:
        """Poll until at least `count` frames were captured or the deadline passed."""
        end = time.monotonic() + deadline_s
        while self.count < count:
            if time.monotonic() > end:
                return False
            time.sleep(POLL_S)
        return True

    def stop(self) -> int:
        if self._lines is None:
            self.lab.procs.stop(self.name)
            self._lines = self._parse()
            if self._log:
                self._log.unlink(missing_ok=True)
            if self._pcap is not None:
                self._frames = self.frames()
                self._pcap.unlink(missing_ok=True)
        return self.count

    def _parse(self) -> list[str]:
        return [line for line in self._read().splitlines() if PACKET_LINE.match(line)]
