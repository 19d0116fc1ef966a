"""Helpers of the exec service tests: a config, running services, raw RUN requests."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from syncrox.config import Config, ExecConfig, TcpLimits
from syncrox.sandbox.model import ExecResult, Job, Verdict
from syncrox.sandbox.runner import Sandbox
from syncrox.services.context import BoundPorts
from syncrox.services.runner import run_services
from tests.conftest import make_config
from tests.sandbox.engine_env import sandbox_config
from tests.services.helpers import RawClient, raw_client

NO_ENGINE = "unix:///nonexistent/docker.sock"


def exec_config(
    data_dir: Path,
    *,
    tcp: TcpLimits | None = None,
    exec_overrides: dict[str, object] | None = None,
    **sandbox_overrides: object,
) -> Config:
    """Free ports in ``data_dir``; the test sandbox limits plus ``sandbox_overrides``."""
    base = make_config(data_dir)
    exec_section = dataclasses.replace(
        ExecConfig(), sandbox=sandbox_config(**sandbox_overrides), **(exec_overrides or {})
    )
    return dataclasses.replace(base, exec=exec_section, tcp=tcp or base.tcp)


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[BoundPorts]:
    async with trio.open_nursery() as nursery:
        ports: BoundPorts = await nursery.start(functools.partial(run_services, config, ui=False))
        yield ports
        nursery.cancel_scope.cancel()


async def create_room(ports: BoundPorts, user: str = "alice") -> tuple[str, str]:
    async with raw_client(ports["rooms"]) as rooms:
        _, code, token = (await rooms.ask(f"CREATE {user}")).split(" ")
    return code, token


def run_request(language: str, code: bytes, stdin: bytes = b"") -> bytes:
    return f"RUN {language} {len(code)} {len(stdin)}\n".encode() + code + stdin


async def read_result(client: RawClient) -> tuple[list[str], bytes, bytes, bytes]:
    """A RESULT line split into words, then its diag, stdout and stderr bodies."""
    line = await client.line()
    assert line is not None and line.startswith("RESULT "), line
    words = line.split(" ")
    diag, stdout, stderr = [await client.conn.receive_body(int(size)) for size in words[7:10]]
    return words, diag, stdout, stderr


@asynccontextmanager
async def admitted(ports: BoundPorts, user: str, room: str) -> AsyncIterator[RawClient]:
    async with raw_client(ports["exec"]) as client:
        assert await client.ask(f"HELLO {user} {room}") == f"OK HELLO {room} {user}"
        yield client


def echo_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs without an engine: every job is ``OK`` and prints its stdin (what the service
    records and serves around a run is then testable; the engine's part is not involved)."""

    async def run(self: Sandbox, job: Job) -> ExecResult:
        await trio.lowlevel.checkpoint()
        return ExecResult(Verdict.OK, exit_code=0, run_ms=1, stdout=job.stdin[:64])

    monkeypatch.setattr(Sandbox, "run", run)


async def read_shown(client: RawClient) -> tuple[list[str], list[bytes]]:
    """A SHOW reply: its ENTRY line split into words, then its five bodies."""
    line = await client.line()
    assert line is not None and line.startswith("ENTRY "), line
    words = line.split(" ")
    bodies = [await client.conn.receive_body(int(size)) for size in words[10:15]]
    return words, bodies
