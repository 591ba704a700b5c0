"""Traffic generators, each run in its own process group in the sender namespace.

trafgen (netsniff-ng) writes whole UDP frames of an exact size from a config file, flat out or at a
target rate; iperf3 UDP is the alternative that goes through the sender's socket stack. Neither
generator's own report is used: `measure` reads kernel counters.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kvnet.bench.dataplane import procs
from kvnet.bench.dataplane.base import Endpoints
from kvnet.sys.cmd import run

ETH_FCS = 4
HEADERS = 14 + 20 + 8  # Ethernet + IPv4 + UDP
MIN_FRAME, MAX_FRAME = 64, 1518


class Generator(Protocol):
    name: str
    port: int          # UDP destination port the sink counts
    sink_verdict: str  # "drop" (nothing needs the packets) or "accept" (a server reads them)

    def start(self, ep: Endpoints, size: int) -> AbstractContextManager[subprocess.Popen[bytes]]:
        """Start sending `size`-byte frames (on the wire, FCS included); stop the group on exit."""
        ...


def udp_payload_len(size: int) -> int:
    """UDP payload bytes for a frame of `size` bytes on the wire (FCS included, preamble not)."""
    if not MIN_FRAME <= size <= MAX_FRAME:
        raise ValueError(f"frame size {size} outside {MIN_FRAME}..{MAX_FRAME}")
    return size - ETH_FCS - HEADERS


def trafgen_config(ep: Endpoints, size: int, *, sport: int = 1024, dport: int = 9) -> str:
    """One packet template: trafgen fills lengths and checksums of the header functions."""
    return (
        "{\n"
        f"  eth(da={ep.dst_mac}, sa={ep.src_mac}, type=0x0800),\n"
        f"  ipv4(sa={ep.src_ip}, da={ep.dst_ip}, ttl=64),\n"
        f"  udp(sp={sport}, dp={dport}),\n"
        f"  fill(0x00, {udp_payload_len(size)})\n"
        "}\n"
    )


def trafgen_argv(dev: str, cfg: str | Path, *, rate_pps: int | None = None, count: int | None = None,
                 cpus: int = 1, gap_us: int | None = None) -> list[str]:
    # --no-sock-mem / --notouch-irq: trafgen must not retune the machine's socket memory or IRQs.
    argv = ["trafgen", "--dev", dev, "--conf", str(cfg), "--cpus", str(cpus), "--no-sock-mem",
            "--notouch-irq", "--no-cpu-stats"]
    if rate_pps:
        argv += ["--rate", f"{rate_pps}pps"]
    if count:
        argv += ["--num", str(count)]
    if gap_us:
        argv += ["--gap", f"{gap_us}us"]
    return argv


@dataclass
class Trafgen:
    """trafgen flat out (or at `rate_pps`) until stopped, or for `count` packets.

    `rate_pps` is met per second but sent in bursts (trafgen 0.6.8: 1000 pps left as one burst of
    1000 frames); `gap_us` paces frame by frame instead (one send call each, so the rate is lower than
    1e6/gap: 100 us gave ~3 kpps), for receivers with small buffers (OVS userspace, ~256 frames)."""

    rate_pps: int | None = None
    gap_us: int | None = None
    count: int | None = None
    cpus: int = 1
    port: int = 9
    sink_verdict: str = "drop"
    name: str = "trafgen"

    @contextmanager
    def start(self, ep: Endpoints, size: int) -> Iterator[subprocess.Popen[bytes]]:
        with tempfile.TemporaryDirectory(prefix="kvbench-") as tmp:
            cfg = Path(tmp) / "udp.cfg"
            cfg.write_text(trafgen_config(ep, size, dport=self.port))
            argv = trafgen_argv(ep.sender_dev, cfg, rate_pps=self.rate_pps, count=self.count,
                                cpus=self.cpus, gap_us=self.gap_us)
            with procs.group(argv, netns=ep.sender_ns) as proc:
                yield proc


def _listening(netns: str, port: int) -> bool:
    out = run(["ss", "-Hltn", f"sport = :{port}"], netns=netns).stdout
    return bool(out.strip())


def wait_listening(netns: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not _listening(netns, port):
        if proc.poll() is not None:
            raise RuntimeError(f"iperf3 server exited {proc.returncode} before listening")
        if time.monotonic() > end:
            raise TimeoutError(f"iperf3 server not listening on {port} in {netns}")
        time.sleep(0.02)


@dataclass
class Iperf3:
    """iperf3 UDP client in the sender namespace, server in the receiver namespace."""

    rate: str = "0"  # iperf3 -b: 0 = unlimited
    port: int = 5201
    sink_verdict: str = "accept"
    max_seconds: int = 600
    name: str = "iperf3"

    @contextmanager
    def start(self, ep: Endpoints, size: int) -> Iterator[subprocess.Popen[bytes]]:
        if shutil.which("iperf3") is None:
            raise FileNotFoundError("iperf3 is not installed")
        server = ["iperf3", "-s", "-p", str(self.port)]
        client = ["iperf3", "-c", ep.dst_ip, "-p", str(self.port), "-u", "-b", self.rate,
                  "-l", str(udp_payload_len(size)), "-t", str(self.max_seconds)]
        with procs.group(server, netns=ep.receiver_ns) as srv:
            wait_listening(ep.receiver_ns, self.port, srv)
            with procs.group(client, netns=ep.sender_ns) as proc:
                yield proc
