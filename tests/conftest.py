"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvnet.client import Client
from kvnet.server.cloud import Cloud
from kvnet.server.testing import RunningServer
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
