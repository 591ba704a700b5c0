"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from kvnet.client import Client
from kvnet.server.api import create_app
from kvnet.server.cloud import Cloud
from kvnet.store.sqlite import SQLiteStore


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Root tests (namespaces, real packets) are skipped with a reason when not running as root."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root for network namespaces")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    store = SQLiteStore(tmp_path / "kvnet.db")
    yield Cloud(store)
    store.close()


class RunningServer:
    """A real API server (uvicorn) on a unix socket, in a thread of the test process."""

    def __init__(self, cloud: Cloud, socket: Path) -> None:
        self.cloud = cloud
        self.url = f"unix:{socket}"
        config = uvicorn.Config(create_app(cloud), uds=str(socket), log_level="warning", access_log=False)
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


@pytest.fixture
def api_server(cloud: Cloud, tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(cloud, tmp_path / "kvnet.sock")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(api_server: RunningServer) -> Iterator[Client]:
    with api_server.client() as c:
        yield c
