"""Run commands in a lab guest over its second serial port (ttyS1 <-> a unix socket of qemu).

The guest's /init (`kvnet.virt.guest.GUEST_INIT`) reads lines `<id> <command>` from ttyS1 (raw, no
echo), runs each with `sh -c`, and answers the output followed by `__KVNET_DONE <id> <rc>`. No network
path is involved, so the channel also works while the guest's NICs are down or misconfigured.
"""

from __future__ import annotations

import itertools
import re
import socket
import subprocess
import time
from pathlib import Path

from kvnet.virt.guest import DONE_MARKER

_ids = itertools.count(1)


def guest_run(shell_socket: Path, command: str, *, timeout: float = 30.0,
              check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `command` (one line of shell) in the guest; returncode and combined output, like subprocess."""
    if "\n" in command:
        raise ValueError("one line of shell per call")
    cid = f"{time.monotonic_ns():x}{next(_ids)}"
    done = re.compile(rf"^{DONE_MARKER} {cid} (\d+)\r?\n", re.MULTILINE)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(shell_socket))
        sock.sendall(f"{cid} {command}\n".encode())
        buf = b""
        while (match := done.search(buf.decode(errors="replace"))) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"guest command {command!r} did not finish in {timeout}s; output: {buf[-500:]!r}")
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"guest shell closed during {command!r}")
            buf += chunk
    text = buf.decode(errors="replace")
    output = text[:match.start()]
    # Discard what an earlier, timed-out command may have left in the channel.
    output = output.rsplit(f"{DONE_MARKER} ", 1)[-1].split("\n", 1)[-1] if DONE_MARKER in output else output
    proc = subprocess.CompletedProcess(["guest", command], int(match.group(1)), output, "")
    if check and proc.returncode != 0:
        raise RuntimeError(f"guest command {command!r} exited {proc.returncode}: {output.strip()[-1000:]}")
    return proc
