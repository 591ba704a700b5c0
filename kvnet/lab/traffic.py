"""Connections from lab VMs, for the security tests: echo servers, one-shot TCP/UDP exchanges, and a
long-lived TCP stream that logs every echo it gets back.

Each is one small Python program (`PROGRAM`) run with this interpreter in the VM's namespace; servers and
streams are lab processes (supervised, stopped by process group, gone with `lab down`).

    with echo_server(lab, "srv", tcp=(8000,), udp=(5353,)):
        tcp_echo(lab, "cli", "10.0.0.2", 8000)              # True: connected and echoed
        with Stream(lab, "cli", "10.0.0.2", 8000) as s:
            ...
            s.echoes()                                      # monotonic times of the echoes so far
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from kvnet.lab import names as n
from kvnet.lab.lab import Lab, LabError
from kvnet.lab.procs import POLL_S
from kvnet.sys.cmd import run

PROGRAM = r'''
import socket, sys, threading, time
mode, args = sys.argv[1], sys.argv[2:]

def echo_tcp(conn):
    with conn:
        for data in iter(lambda: conn.recv(4096), b""):
            conn.sendall(data)

def serve_tcp(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo_tcp, args=(conn,), daemon=True).start()

def serve_udp(sock):
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(data, peer)

if mode == "server":
    for port in filter(None, args[0].split(",")):
        listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", int(port))); listener.listen(64)
        threading.Thread(target=serve_tcp, args=(listener,), daemon=True).start()
    for port in filter(None, args[1].split(",")):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sock.bind(("0.0.0.0", int(port)))
        threading.Thread(target=serve_udp, args=(sock,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
elif mode == "tcp":
    ip, port, timeout = args[0], int(args[1]), float(args[2])
    try:
        s = socket.create_connection((ip, port), timeout=timeout); s.sendall(b"x"); ok = s.recv(1) == b"x"
    except OSError:
        ok = False
    sys.exit(0 if ok else 1)
elif mode == "udp":
    ip, port, sport, payload, timeout = args[0], int(args[1]), int(args[2]), args[3].encode(), float(args[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", sport)); s.settimeout(timeout)
    s.sendto(payload, (ip, port))
    try:
        print(s.recvfrom(4096)[0].decode(), flush=True)
    except OSError:
        sys.exit(1)
elif mode == "send":
    ip, port, payload, interval = args[0], int(args[1]), args[2].encode(), float(args[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print("sending", flush=True)
    while True:
        try:
            s.sendto(payload, (ip, port))
        except OSError:
            pass  # no neighbour yet: the next one
        time.sleep(interval)
elif mode == "stream":
    ip, port, interval = args[0], int(args[1]), float(args[2])
    s = socket.create_connection((ip, port), timeout=5); s.settimeout(interval * 5)
    print("connected", flush=True)
    while True:
        try:
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise OSError("closed")
            print(f"ok {time.monotonic():.3f}", flush=True)
        except OSError as exc:
            print(f"stall {time.monotonic():.3f} {exc}", flush=True)
        time.sleep(interval)
'''
_ids = itertools.count(1)
OK_LINE = re.compile(r"^ok (\d+\.\d+)$", re.M)


def _argv(mode: str, *args: object) -> list[str]:
    return [sys.executable, "-c", PROGRAM, mode, *(str(a) for a in args)]


def _vm_ns(lab: Lab, vm: str) -> str:
    if vm not in lab.vms():
        raise LabError(f"lab {lab.name} has no VM {vm!r}")
    return n.vm_ns(lab.name, vm)


def _wait_line(lab: Lab, name: str, log: Path, line: str, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while line not in (log.read_text(errors="replace") if log.exists() else ""):
        if not lab.procs.alive(name):
            raise LabError(f"{name} exited:\n{lab.procs.log_tail(name)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: no {line!r} after {deadline_s}s")
        time.sleep(POLL_S)


@contextmanager
def echo_server(lab: Lab, vm: str, *, tcp: Sequence[int] = (), udp: Sequence[int] = ()) -> Iterator[None]:
    """TCP and UDP echo on the given ports of `vm`, listening when the block starts."""
    name = f"echo-{vm}-{os.getpid()}-{next(_ids)}"
    rec = lab.procs.start(name, _argv("server", ",".join(map(str, tcp)), ",".join(map(str, udp))),
                          netns=_vm_ns(lab, vm))
    try:
        _wait_line(lab, name, Path(rec.log), "ready")
        yield
    finally:
        lab.procs.stop(name)


def tcp_echo(lab: Lab, vm: str, ip: str, port: int, timeout: float = 1.0) -> bool:
    """Did a new TCP connection from `vm` to ip:port get its byte echoed within `timeout`?"""
    return run(_argv("tcp", ip, port, timeout), netns=_vm_ns(lab, vm), check=False,
               timeout=timeout + 10).returncode == 0


def udp_echo(lab: Lab, vm: str, ip: str, port: int, source_port: int, payload: str,
             timeout: float = 1.0) -> str | None:
    """Send one datagram from `source_port`; the answer that came back (None: nothing within `timeout`)."""
    proc = run(_argv("udp", ip, port, source_port, payload, timeout), netns=_vm_ns(lab, vm), check=False,
               timeout=timeout + 10)
    return proc.stdout.strip() if proc.returncode == 0 else None


@contextmanager
def datagrams(lab: Lab, vm: str, ip: str, port: int, payload: bytes, interval_s: float = 0.01) -> Iterator[None]:
    """`vm` sends `payload` to ip:port over UDP every `interval_s` while the block runs."""
    name = f"send-{vm}-{os.getpid()}-{next(_ids)}"
    rec = lab.procs.start(name, _argv("send", ip, port, payload.decode(), interval_s), netns=_vm_ns(lab, vm))
    try:
        _wait_line(lab, name, Path(rec.log), "sending")
        yield
    finally:
        lab.procs.stop(name)


def wait_until(condition: Callable[[], object], deadline_s: float, interval_s: float = 0.05) -> float | None:
    """Milliseconds until `condition()` held, or None when `deadline_s` passed first."""
    start = time.monotonic()
    while True:
        if condition():
            return (time.monotonic() - start) * 1000
        if time.monotonic() - start > deadline_s:
            return None
        time.sleep(interval_s)


class Stream:
    """One TCP connection from `vm` to ip:port (an echo server) exchanging a byte every `interval_s`;
    `echoes()` are the monotonic times of the echoes it got back so far."""

    def __init__(self, lab: Lab, vm: str, ip: str, port: int, interval_s: float = 0.02) -> None:
        self.lab = lab
        self.name = f"stream-{vm}-{os.getpid()}-{next(_ids)}"
        self.argv = _argv("stream", ip, port, interval_s)
        self.netns = _vm_ns(lab, vm)
        self.log: Path | None = None

    def __enter__(self) -> Stream:
        self.log = Path(self.lab.procs.start(self.name, self.argv, netns=self.netns).log)
        _wait_line(self.lab, self.name, self.log, "ok ")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.lab.procs.stop(self.name)

    def echoes(self) -> list[float]:
        text = self.log.read_text(errors="replace") if self.log and self.log.exists() else ""
        return [float(t) for t in OK_LINE.findall(text)]

    def longest_gap(self) -> float:
        """The longest time between two echoes so far, in seconds."""
        times = self.echoes()
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)
