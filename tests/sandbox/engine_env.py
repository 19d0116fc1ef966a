"""A real Docker engine for the tests marked ``docker``, or a skip; or a failure in CI.

Tests that claim the engine never fake it: without a usable engine (reachable, with the
sandbox image) they skip, unless ``SYNCROX_REQUIRE_DOCKER=1`` (set by ``.ci/run`` and by
``sandbox/engine.sh run``), in which case they fail, so CI can never pass without running them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from syncrox.config import SandboxConfig
from syncrox.sandbox.engine import SANDBOX_LABEL, Engine, EngineError

REQUIRE_ENV = "SYNCROX_REQUIRE_DOCKER"

# Tight enough to keep the attack suite quick, loose enough for Java on a busy CI machine.
TEST_LIMITS = {"run_time_limit_s": 3.0, "compile_time_limit_s": 30.0, "pool_size": 0}


def sandbox_config(**overrides: object) -> SandboxConfig:
    return dataclasses.replace(SandboxConfig(), **{**TEST_LIMITS, **overrides})  # type: ignore[arg-type]


def docker_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


@contextmanager
def usable_engine(config: SandboxConfig | None = None) -> Iterator[Engine]:
    """The engine with the sandbox image; skip (or fail under SYNCROX_REQUIRE_DOCKER=1)."""
    config = config or sandbox_config()
    try:
        engine = Engine.connect(config)
    except EngineError as exc:
        _unusable(str(exc))
    try:
        image_id, _ = engine.image_info(config.image)
        if image_id is None:
            _unusable(f"image {config.image} is missing (syncrox-trio sandbox build)")
        yield engine
    finally:
        engine.close()


def _unusable(reason: str) -> None:
    if docker_required():
        pytest.fail(f"{REQUIRE_ENV}=1 but no usable Docker engine: {reason}")
    pytest.skip(f"no usable Docker engine: {reason}")


def our_containers(engine: Engine) -> list[str]:
    """Every container (running or not) carrying the sandbox label."""
    return [container_id for container_id, _ in engine.list_containers({SANDBOX_LABEL: "1"})]
