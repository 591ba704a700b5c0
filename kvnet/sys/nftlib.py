"""nft commands run in this process through libnftables (what the `nft` tool itself is a front end of).

Starting the `nft` tool costs about 10 ms here (it loads its library and the kernel's caches each time);
a reconcile pass lists the filter tables and writes them, several commands a pass. In-process, the
same command costs well under a millisecond. Only the forms kvnet uses are taken (`nft -j <command>` and
`nft -f -` with a script); anything else, or a machine without the library, runs the tool as before.
The library works in this process's network namespace: commands for another namespace keep going
through `ip netns exec ... nft` (they do not start with `nft`).
"""

from __future__ import annotations

import ctypes
import subprocess
import threading
from collections.abc import Sequence

OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON, libnftables.h


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

    def run(self, command: str, json_output: bool) -> tuple[int, str, str]:
        with self.lock:
            ctx = self.lib.nft_ctx_new(0)
            try:
                if json_output:
                    self.lib.nft_ctx_output_set_flags(ctx, OUTPUT_JSON)
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
        rc, out, err = _LIB.run(input, json_output=False)
    elif args[:1] == ["-j"] and len(args) > 1 and all(not a.startswith("-") for a in args[1:]):
        rc, out, err = _LIB.run(" ".join(args[1:]), json_output=True)
    else:
        return None
    return subprocess.CompletedProcess(list(argv), rc, out, err)
