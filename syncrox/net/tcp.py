"""The Trio edge of every TCP service: listen, bound connections, run a line loop.

``serve_tcp`` follows ``nursery.start``: it reports the bound port through ``task_status``
once listening, then serves until cancelled. Each connection runs its handler in the
server's nursery; any exception a handler lets escape is logged and closes only that
connection. ``line_loop`` is the request loop shared by line-based services: idle timeout,
``ERR`` replies for refused lines, and a cap on consecutive errors.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import trio

from syncrox.config import TcpLimits
from syncrox.errors import (
    BUSY,
    INTERNAL,
    TIMEOUT,
    TOO_MANY_ERRORS,
    LocalProtocolError,
    ProtocolError,
    StoreError,
)
from syncrox.logs import log_event
from syncrox.net.lines import LineConnection
from syncrox.protocol.framing import format_error

Handler = Callable[[LineConnection], Awaitable[None]]
LineHandler = Callable[[str], Awaitable[bool]]

CLOSE_GRACE_S = 1.0


def format_peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


async def serve_tcp(
    handler: Handler,
    *,
    service: str,
    host: str,
    port: int,
    limits: TcpLimits,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = logging.getLogger(f"syncrox.{service}")
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_port: int = listeners[0].socket.getsockname()[1]
    active = 0

    async def on_stream(stream: trio.SocketStream) -> None:
        # Whatever one connection does, nothing may escape into serve_listeners: that would
        # end the service, and every service shares one nursery.
        try:
            await serve_one(stream)
        except Exception:
            logger.exception("conn.crash_outside_handler")
            await trio.aclose_forcefully(stream)

    async def serve_one(stream: trio.SocketStream) -> None:
        nonlocal active
        try:
            peer = format_peer(stream.socket.getpeername())
        except OSError:  # reset before we got to it: nobody left to serve or to answer
            log_event(logger, "conn.gone", logging.DEBUG)
            await trio.aclose_forcefully(stream)
            return
        conn = LineConnection(
            stream,
            max_line_bytes=limits.max_line_bytes,
            peer=peer,
            send_timeout_s=limits.send_timeout_s,
        )
        if active >= limits.max_connections:
            log_event(logger, "conn.refused", logging.WARNING, peer=peer, reason="too many")
            await _refuse(conn)
            return
        active += 1
        log_event(logger, "conn.open", peer=peer)
        outcome = "closed"
        try:
            await handler(conn)
        except trio.BrokenResourceError:
            outcome = "broken"
        except trio.ClosedResourceError:
            outcome = "closed"
        except Exception:
            logger.exception("conn.crash peer=%s", peer)
            outcome = "crashed"
        finally:
            active -= 1
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE_S):
                await conn.aclose()
            log_event(logger, "conn.close", peer=peer, outcome=outcome)

    log_event(logger, "service.start", host=host, port=bound_port)
    try:
        task_status.started(bound_port)
        await trio.serve_listeners(on_stream, listeners)
    finally:
        log_event(logger, "service.stop", port=bound_port)


async def _refuse(conn: LineConnection) -> None:
    with (
        trio.move_on_after(CLOSE_GRACE_S),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await conn.send_line(format_error(BUSY, "too many connections, try again later"))
    await trio.aclose_forcefully(conn.stream)


async def line_loop(
    conn: LineConnection,
    limits: TcpLimits,
    handle: LineHandler,
    logger: logging.Logger,
) -> None:
    """Feed lines to ``handle`` until EOF, ``handle`` returns ``False``, idle timeout, a
    fatal error or too many consecutive errors. A ``ProtocolError`` raised while reading or
    handling a line is answered with ``ERR <code> <text>`` and logged; so is a
    ``StoreError`` (``ERR INTERNAL``: the disk or the database failed, the request had no
    effect), which leaves the connection open, as chat does. Every command that carries a
    body reads it before it touches the store, so no body is ever left to be read as lines."""
    consecutive_errors = 0
    while True:
        try:
            with trio.move_on_after(limits.idle_timeout_s) as idle:
                line = await conn.receive_line()
            if idle.cancelled_caught:
                await conn.send_line(format_error(TIMEOUT, "idle for too long, closing"))
                log_event(logger, "conn.idle", peer=conn.peer)
                return
            if line is None or not await handle(line):
                return
            consecutive_errors = 0
        except (ProtocolError, StoreError) as exc:
            consecutive_errors += 1
            if isinstance(exc, StoreError):
                log_event(logger, "store.error", logging.ERROR, peer=conn.peer, error=exc)
                exc = LocalProtocolError(INTERNAL, "storage failed; the request had no effect")
            await reply_error(conn, exc, logger)
            if exc.fatal:
                return
            if consecutive_errors >= limits.max_consecutive_errors:
                await conn.send_line(
                    format_error(TOO_MANY_ERRORS, "too many bad requests, closing")
                )
                return


async def reply_error(conn: LineConnection, exc: ProtocolError, logger: logging.Logger) -> None:
    log_event(
        logger,
        "request.refused",
        logging.WARNING,
        peer=conn.peer,
        code=exc.code,
        reason=exc.message,
    )
    await conn.send_line(format_error(exc.code, exc.message))
