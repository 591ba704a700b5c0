"""One pps measurement over one path: counters before, a timed window while sending, after drain.

pps/bps come from the receiver's sink counter over a window that starts once the sender's tx counter
moves (generator warmed up); loss = 1 - received/sent over the whole run, sent being the sender
interface's tx counter delta and received the sink counter delta after the path has drained.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from kvnet.bench.dataplane import counters
from kvnet.bench.dataplane.base import Endpoints
from kvnet.bench.dataplane.generators import Generator


@dataclass(frozen=True)
class Snapshot:
    t: float
    tx: counters.LinkCounters
    rx: counters.LinkCounters
    sink: counters.SinkCounter


@dataclass(frozen=True)
class Measurement:
    size: int
    seconds: float
    pps: float          # at the receiver (sink counter) during the window
    bps: float          # pps * frame size * 8 (L2 frame with FCS)
    offered_pps: float  # sender tx counter during the window
    rx_if_pps: float    # receiver interface rx counter during the window
    sent: int
    received: int
    loss: float
    rx_dropped: int     # receiver interface rx drops over the run
    tx_dropped: int     # sender interface tx drops over the run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(ep: Endpoints) -> Snapshot:
    t0 = time.monotonic()
    tx = counters.link_counters(ep.sender_ns, ep.sender_dev)
    sink = counters.sink_counter(ep.receiver_ns)
    rx = counters.link_counters(ep.receiver_ns, ep.receiver_dev)
    return Snapshot((t0 + time.monotonic()) / 2, tx, rx, sink)


def wait_sending(ep: Endpoints, before: int, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Poll until the sender's tx counter moves past `before` (the generator is running)."""
    end = time.monotonic() + timeout
    while counters.link_counters(ep.sender_ns, ep.sender_dev).tx_packets <= before:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
            raise RuntimeError(f"generator exited {proc.returncode} before sending: {err}")
        if time.monotonic() > end:
            raise TimeoutError(f"no packets left {ep.sender_dev} in {ep.sender_ns}")
        time.sleep(0.01)


def wait_drained(ep: Endpoints, timeout: float = 3.0, step: float = 0.05) -> None:
    """Poll until the sink counter stops moving (queues along the path are empty)."""
    end = time.monotonic() + timeout
    last = counters.sink_counter(ep.receiver_ns).packets
    while time.monotonic() < end:
        time.sleep(step)
        now = counters.sink_counter(ep.receiver_ns).packets
        if now == last:
            return
        last = now


def loss_ratio(sent: int, received: int) -> float:
    """1 - received/sent, clamped to [0, 1]; 0 when nothing was sent."""
    if sent <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - received / sent))


def measure(ep: Endpoints, gen: Generator, size: int, seconds: float) -> Measurement:
    """Send `size`-byte frames with `gen` for a `seconds` window and count at the receiver."""
    counters.install_sink(ep.receiver_ns, gen.port, gen.sink_verdict)
    if ep.warm:
        ep.warm()
    start = snapshot(ep)
    with gen.start(ep, size) as proc:
        wait_sending(ep, start.tx.tx_packets, proc)
        w0 = snapshot(ep)
        time.sleep(seconds)  # the measurement window itself, not a synchronisation
        w1 = snapshot(ep)
    wait_drained(ep)
    end = snapshot(ep)
    dt = w1.t - w0.t
    pps = (w1.sink.packets - w0.sink.packets) / dt
    sent = end.tx.tx_packets - start.tx.tx_packets
    received = end.sink.packets - start.sink.packets
    return Measurement(
        size=size, seconds=dt, pps=pps, bps=pps * size * 8,
        offered_pps=(w1.tx.tx_packets - w0.tx.tx_packets) / dt,
        rx_if_pps=(w1.rx.rx_packets - w0.rx.rx_packets) / dt,
        sent=sent, received=received, loss=loss_ratio(sent, received),
        rx_dropped=end.rx.rx_dropped - start.rx.rx_dropped,
        tx_dropped=end.tx.tx_dropped - start.tx.tx_dropped,
    )
