"""`kvnet server`: the API on a store, on loopback TCP and/or a unix socket."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
import uvicorn

from kvnet.server.api import create_app
from kvnet.server.cloud import Cloud
from kvnet.store import open_store

# Watch long-polls each hold a worker thread; allow many agents at once.
WORKER_THREADS = 256
# Agents hold long-poll watches open; on shutdown do not wait for them to time out.
GRACEFUL_SHUTDOWN_S = 1


def serve(store_url: str, host: str | None, port: int, uds: str | None, log_level: str = "warning") -> None:
    store = open_store(store_url)
    app = create_app(Cloud(store))

    @asynccontextmanager
    async def lifespan(_app: object):  # type: ignore[no-untyped-def]
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        yield
        store.close()

    app.router.lifespan_context = lifespan
    if uds:
        Path(uds).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(uds):
            os.unlink(uds)
        config = uvicorn.Config(app, uds=uds, log_level=log_level, access_log=False,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    else:
        config = uvicorn.Config(app, host=host or "127.0.0.1", port=port, log_level=log_level, access_log=False,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    uvicorn.Server(config).run()
