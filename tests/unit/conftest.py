"""The fixtures the use-case tests share: a clock that moves when told, the in-memory store,
and VPS.org with one server."""

from __future__ import annotations

import pytest

from tests.fakes.memory import FakeVps, MemoryStore
from tests.unit.test_use_cases import SERVER, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def vps(clock: Clock) -> FakeVps:
    fake = FakeVps(clock)
    fake.add_server(SERVER, "web-1")
    return fake
