"""Fixtures for end-to-end tests: each module defines its own module-scoped `lab`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab.lab import Lab


@pytest.fixture(scope="module")
def client(lab: Lab) -> Iterator[Client]:
    """An API client for the module's lab (through the lab's unix socket)."""
    with Client(control.server_url(lab)) as c:
        yield c
