"""Fixtures of the sandbox tests: a real engine, and a sandbox that must leave nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from syncrox.sandbox.engine import Engine
from syncrox.sandbox.runner import Sandbox, open_sandbox
from tests.sandbox.engine_env import our_containers, sandbox_config, usable_engine


@pytest.fixture
def engine() -> Iterator[Engine]:
    with usable_engine() as found:
        assert our_containers(found) == [], "containers of ours left by an earlier test"
        yield found


@pytest.fixture
async def sandbox(engine: Engine) -> AsyncIterator[Sandbox]:
    """A sandbox without a pool; afterwards the engine must list no container of ours."""
    async with open_sandbox(sandbox_config()) as opened:
        yield opened
    assert our_containers(engine) == []
