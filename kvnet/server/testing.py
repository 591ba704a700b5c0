"""A real API server (uvicorn) in a thread of the calling process, on a unix socket: for tests and tools
that need the HTTP API without a subprocess."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from kvnet.client import Client
from kvnet.server.api import create_app
from kvnet.server.cloud import Cloud


class RunningServer:
    """A real API server (uvicorn) on a unix socket, in a thread of the test process."""

    def __init__(self, cloud: Cloud, socket: Path, app: FastAPI | None = None) -> None:
        self.cloud = cloud
        self.socket = socket
        self.url = f"unix:{socket}"
        config = uvicorn.Config(app or create_app(cloud), uds=str(socket), log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("API server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def client(self) -> Client:
        return Client(self.url)

    def http(self) -> httpx.Client:
        """Plain HTTP to the server, for requests the kvnet client would not send."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://kvnet")
