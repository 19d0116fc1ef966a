"""The one door from the UI to the servers: short Trio calls through ``syncrox.client``.

Streamlit runs page scripts in ordinary threads; each call here runs its own ``trio.run``
with a deadline, so a slow or dead server shows an error instead of freezing the page.
Where the servers are comes from ``SYNCROX_PORTS_FILE`` (set by ``syncrox-trio run``),
else from the default config.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import trio

from syncrox.client.endpoints import Endpoints
from syncrox.client.rooms import RoomsClient
from syncrox.config import load_config
from syncrox.errors import LocalProtocolError, RequestRefused, SyncroxError

T = TypeVar("T")
CALL_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 1.0


class BackendError(Exception):
    """A call failed; ``str()`` is a message fit for the user."""


def endpoints() -> Endpoints:
    ports_file = os.environ.get("SYNCROX_PORTS_FILE")
    config = load_config()
    found = Endpoints.resolve(config, ports_file=Path(ports_file) if ports_file else None)
    host = os.environ.get("SYNCROX_CONNECT_HOST")
    return Endpoints(host or found.host, found.ports)


def call(operation: Callable[[Endpoints], Awaitable[T]]) -> T:
    async def bounded() -> T:
        with trio.fail_after(CALL_TIMEOUT_S):
            return await operation(endpoints())

    try:
        return trio.run(bounded)
    except (RequestRefused, LocalProtocolError) as exc:
        raise BackendError(exc.message) from exc
    except trio.TooSlowError as exc:
        raise BackendError("the server did not answer in time") from exc
    except (SyncroxError, OSError) as exc:
        raise BackendError(f"cannot reach the server: {exc}") from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        # The server went away mid-request (a restart, a crash, a reset connection).
        raise BackendError("the server closed the connection; try again") from exc


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


def leave_room(token: str) -> None:
    async def op(where: Endpoints) -> None:
        async with RoomsClient.connect(where.host, where.port("rooms")) as rooms:
            await rooms.leave(token)

    call(op)


def service_status() -> dict[str, bool]:
    """Which TCP services accept connections right now."""

    async def op(where: Endpoints) -> dict[str, bool]:
        status: dict[str, bool] = {}
        for name, port in sorted(where.ports.items()):
            if name in ("files_udp", "ui") or not port:
                continue
            status[name] = False
            with trio.move_on_after(PROBE_TIMEOUT_S):
                try:
                    stream = await trio.open_tcp_stream(where.host, port)
                except OSError:
                    continue
                await stream.aclose()
                status[name] = True
        return status

    return call(op)
