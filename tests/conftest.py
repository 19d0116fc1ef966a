"""Shared fixtures: a config on free ports in a temporary data directory, and a running
set of services inside the test's own nursery."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from syncrox.config import Config, Ports, RoomsConfig
from syncrox.services.context import BoundPorts
from syncrox.services.runner import run_services

# Every test that does I/O runs under this bound (trio.fail_after), so a hang fails fast.
IO_TIMEOUT_S = 20.0


def make_config(data_dir: Path, **rooms_overrides: object) -> Config:
    zero_ports = Ports(**{field.name: 0 for field in dataclasses.fields(Ports)})
    return Config(
        data_dir=data_dir,
        ports=zero_ports,
        rooms=dataclasses.replace(RoomsConfig(), **rooms_overrides),  # type: ignore[arg-type]
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data")


@pytest.fixture
async def services(config: Config) -> AsyncIterator[BoundPorts]:
    """Every service listening on 127.0.0.1 free ports; stopped after the test."""
    async with trio.open_nursery() as nursery:
        ports: BoundPorts = await nursery.start(functools.partial(run_services, config, ui=False))
        yield ports
        nursery.cancel_scope.cancel()
