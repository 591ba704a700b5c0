"""Long-lived children that die with the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A `preexec_fn` that makes the child get SIGKILL when its parent dies, also by SIGKILL (nothing else
    would end it: an `ip monitor` left behind keeps its agent's process group alive). The kernel ties
    this to the *thread* that started the child, so start it from a thread that lives as long as the
    agent. The flag survives exec (not for set-uid programs)."""
    parent = os.getpid()

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(0)

    return preexec
