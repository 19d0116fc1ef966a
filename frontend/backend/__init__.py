"""The one door from the UI to the servers, through ``syncrox.client`` like any client.

Short calls (create a room, list files, run code, fetch metrics) each run their own
``trio.run`` with a deadline, on the page's thread, so a slow or dead server shows an error
instead of freezing the page. Live links (chat, a transfer in progress) run in threads of
their own (``backend.runtime``). Where the servers are comes from ``SYNCROX_PORTS_FILE``
(set by ``syncrox-trio run``), else from the default config. Every failure reaches the page
as ``BackendError`` with a message fit for the user.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import trio

from backend.errors import BackendError, failed
from syncrox.client.endpoints import Endpoints
from syncrox.client.rooms import RoomsClient
from syncrox.config import load_config

__all__ = ["BackendError", "call", "create_room", "endpoints", "join_room", "leave_room"]

T = TypeVar("T")
CALL_TIMEOUT_S = 10.0


def endpoints() -> Endpoints:
    ports_file = os.environ.get("SYNCROX_PORTS_FILE")
    config = load_config()
    found = Endpoints.resolve(config, ports_file=Path(ports_file) if ports_file else None)
    host = os.environ.get("SYNCROX_CONNECT_HOST")
    return Endpoints(host or found.host, found.ports)


def call(operation: Callable[[Endpoints], Awaitable[T]], *, timeout_s: float = CALL_TIMEOUT_S) -> T:
    """Run one short async operation against the services, within ``timeout_s``."""

    async def bounded() -> T:
        with trio.fail_after(timeout_s):
            return await operation(endpoints())

    try:
        return trio.run(bounded)
    except Exception as exc:
        raise failed(exc, getattr(operation, "__qualname__", "call")) from exc


def create_room(user: str) -> tuple[str, str]:
    async def op(where: Endpoints) -> tuple[str, str]:
        async with RoomsClient.connect(where.host, where.port("rooms")) as rooms:
            return await rooms.create(user)

    return call(op)


def join_room(code: str, user: str) -> str:
    async def op(where: Endpoints) -> str:
        async with RoomsClient.connect(where.host, where.port("rooms")) as rooms:
            return await rooms.join(code, user)

    return call(op)


def whoami(token: str) -> tuple[str, str]:
    """``(room, user)`` of a membership token, as the server sees it now."""

    async def op(where: Endpoints) -> tuple[str, str]:
        async with RoomsClient.connect(where.host, where.port("rooms")) as rooms:
            return await rooms.whoami(token)

    return call(op)


def leave_room(token: str) -> None:
    async def op(where: Endpoints) -> None:
        async with RoomsClient.connect(where.host, where.port("rooms")) as rooms:
            await rooms.leave(token)

    call(op)
