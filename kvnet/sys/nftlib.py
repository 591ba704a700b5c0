"""nft commands run in this process through libnftables (what the `nft` tool itself is a front end of).

Starting the `nft` tool costs about 10 ms here (it loads its library and the kernel's caches each time);
a reconcile pass lists the filter tables and writes them, several commands a pass. In-process, the
same command costs well under a millisecond. Only the forms kvnet uses are taken (`nft [-j] [-t] <command>`
and `nft -f -` with a script); anything else, or a machine without the library, runs the tool as before.
The library works in this process's network namespace: commands for another namespace keep going
through `ip netns exec ... nft` (they do not start with `nft`).
"""

from __future__ import annotations

import ctypes
import subprocess
import threading
from collections.abc import Sequence

# Output flags of libnftables.h, by the option of the `nft` tool that sets them.
FLAGS = {"-j": 1 << 4, "-t": 1 << 11}  # NFT_CTX_OUTPUT_JSON, NFT_CTX_OUTPUT_TERSE


class _Lib:
    def __init__(self) -> None:
        lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib
        self.lock = threading.Lock()  # one command at a time: the library keeps per-context state

    def run(self, command: str, flags: int) -> tuple[int, str, str]:
        with self.lock:
            ctx = self.lib.nft_ctx_new(0)
            try:
                if flags:
                    self.lib.nft_ctx_output_set_flags(ctx, flags)
                self.lib.nft_ctx_buffer_output(ctx)
                self.lib.nft_ctx_buffer_error(ctx)
                rc = self.lib.nft_run_cmd_from_buffer(ctx, command.encode())
                out = (self.lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
                err = (self.lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
            finally:
                self.lib.nft_ctx_free(ctx)
        return (0 if rc == 0 else 1), out, err


def _load() -> _Lib | None:
    try:
        return _Lib()
    except (OSError, AttributeError):
        return None


_LIB = _load()


def available() -> bool:
    return _LIB is not None


def run(argv: Sequence[str], input: str | None) -> subprocess.CompletedProcess[str] | None:
    """The command's result, or None when it is not one this module takes."""
    if _LIB is None or not argv or argv[0] != "nft":
        return None
    args = list(argv[1:])
    if args == ["-f", "-"] and input is not None:
        rc, out, err = _LIB.run(input, 0)
    else:
        options = [a for a in args if a.startswith("-")]
        command = [a for a in args if not a.startswith("-")]
        if not command or any(o not in FLAGS for o in options) or args != options + command:
            return None
        rc, out, err = _LIB.run(" ".join(command), sum(FLAGS[o] for o in set(options)))
    return subprocess.CompletedProcess(list(argv), rc, out, err)
