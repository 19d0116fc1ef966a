"""The terminal chat in-process: commands, a reconnect that shows exactly what was missed
while the server restarted, a refused request that is not a disconnect, and how many
reconnects a long session gets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from syncrox.cli import chat as cli_chat
from syncrox.cli.chat import TerminalChat
from syncrox.cli.common import EXIT_FAILED, EXIT_OK
from syncrox.client.endpoints import Endpoints
from syncrox.config import Config
from syncrox.net.lines import LineConnection
from syncrox.services.context import BoundPorts
from tests.conftest import IO_TIMEOUT_S
from tests.services.chat_helpers import ChatServer, chat_server, record_chat_services, with_chat


class Screen:
    """What the terminal chat printed, with a way to wait for a line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = trio.Event()

    def __call__(self, text: str) -> None:
        self.lines.append(text)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, fragment: str) -> str:
        while True:
            for line in self.lines:
                if fragment in line:
                    return line
            await self._changed.wait()

    async def wait_count(self, fragment: str, count: int) -> None:
        while self.count(fragment) < count:
            await self._changed.wait()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def count(self, fragment: str) -> int:
        return sum(fragment in line for line in self.lines)


async def serve_until_cancelled(
    config: Config,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[ChatServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        async with chat_server(config) as server:
            task_status.started(server)
            await trio.sleep_forever()


def on_ports(config: Config, ports: BoundPorts) -> Config:
    fixed = dataclasses.replace(config.ports, rooms=ports["rooms"], chat=ports["chat"])
    return dataclasses.replace(config, ports=fixed)


async def test_commands_and_a_reconnect_that_fills_the_gap(config: Config, tmp_path: Path) -> None:
    picture = tmp_path / "a picture.gif"
    picture.write_bytes(b"GIF89a" + bytes(50))
    screen = Screen()
    lines_in, lines_out = trio.open_memory_channel[str | None](16)
    status: list[int] = []
    finished = trio.Event()
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            first_scope = trio.CancelScope()
            first = await nursery.start(serve_until_cancelled, config, first_scope)
            code, _ = await first.create_room()
            endpoints = Endpoints("127.0.0.1", first.ports)
            chat = TerminalChat(endpoints, code, "bob", None, screen)

            async def converse() -> None:
                status.append(await chat._converse(lines_out, 20))
                finished.set()

            nursery.start_soon(converse)
            await screen.wait_for("* joined room")
            await lines_in.send("hello all")
            await screen.wait_for("#1 bob: hello all")
            await lines_in.send(f"/img {picture}")
            await screen.wait_for("* uploaded a_picture.gif as #2")
            await lines_in.send("/who")
            await screen.wait_for("* here: bob")
            await lines_in.send("/nonsense")
            await screen.wait_for("! unknown command /nonsense")

            first_scope.cancel()  # the server goes away...
            await screen.wait_for("* connection lost")
            second_scope = trio.CancelScope()
            second = await nursery.start(
                serve_until_cancelled, on_ports(config, first.ports), second_scope
            )
            async with second.client("ann", code) as ann:  # ...and others talk meanwhile
                await ann.send("you missed this")
                await ann.send("and this")
                await screen.wait_for("#4 ann: and this")
                await ann.send("and this one live")
                await screen.wait_for("#5 ann: and this one live")
            await lines_in.send("/history 3")
            await screen.wait_count("#5 ann: and this one live", 2)
            await lines_in.send(None)  # end of input: leave
            await finished.wait()
            second_scope.cancel()
    assert status == [0]
    for text in ("#3 ann: you missed this", "#4 ann: and this", "#5 ann: and this one live"):
        assert screen.count(text) == 2  # once when it happened, once more in /history 3
    assert screen.count("#1 bob: hello all") == 1  # shown once, not in the last 3
    assert screen.count("#2 bob sent image a_picture.gif") == 1


async def test_an_image_refused_busy_is_shown_and_the_chat_goes_on(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = tmp_path / "cat.gif"
    picture.write_bytes(b"GIF89a" + bytes(50))
    services = record_chat_services(monkeypatch)
    limits = with_chat(config, max_concurrent_uploads=1, image_upload_timeout_s=0.2)
    screen = Screen()
    lines_in, lines_out = trio.open_memory_channel[str | None](16)
    with trio.fail_after(IO_TIMEOUT_S):
        async with chat_server(limits) as server:
            code, _ = await server.create_room()
            (service,) = services
            await service.upload_slots.acquire_on_behalf_of(lines_in)  # every slot is taken
            chat = TerminalChat(Endpoints("127.0.0.1", server.ports), code, "bob", None, screen)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lines_in.send, f"/img {picture}")
                status = await_status(nursery, chat, lines_out)
                refused = await screen.wait_for("! refused:")
                assert refused == "! refused: BUSY too many image uploads at once, try again later"
                await lines_in.send("still here")
                await screen.wait_for("#1 bob: still here")
                service.upload_slots.release_on_behalf_of(lines_in)
                await lines_in.send(f"/img {picture}")
                await screen.wait_for("* uploaded cat.gif as #2")
                await lines_in.send(None)
    assert status == [EXIT_OK]
    assert screen.count("* connection lost") == 0
    assert screen.count("* joined room") == 1


def await_status(
    nursery: trio.Nursery, chat: TerminalChat, lines: trio.MemoryReceiveChannel[str | None]
) -> list[int]:
    """Run the chat in ``nursery``; its exit status appears in the returned list."""
    status: list[int] = []

    async def converse() -> None:
        status.append(await chat._converse(lines, 20))

    nursery.start_soon(converse)
    return status


class DroppingChatServer:
    """A scripted chat server that welcomes every connection and drops it ``session_s``
    after the client's first ``HISTORY``, except the ``keep``-th connection (1-based) and
    later ones, which stay up."""

    def __init__(self, session_s: float, keep: int) -> None:
        self.session_s = session_s
        self.keep = keep
        self.connections = 0
        self.history_requests: list[str] = []

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = LineConnection(stream, max_line_bytes=4096)
        drop = trio.CancelScope(deadline=float("inf"))
        with drop:
            while (line := await conn.receive_line()) is not None:
                word, _, rest = line.partition(" ")
                match word:
                    case "HELLO":
                        user, room = rest.split()[:2]
                        await conn.send_line(f"OK HELLO {room} {user} 0")
                    case "HISTORY":
                        self.history_requests.append(line)
                        await conn.send_line("HISTORY_END 0 0")
                        if self.connections < self.keep:
                            drop.deadline = trio.current_time() + self.session_s
                    case "PING":
                        await conn.send_line("PONG")
                    case "BYE":
                        await conn.send_line("OK BYE")
                        break
        await trio.aclose_forcefully(stream)


async def drops_until_exit_or_joins(
    monkeypatch: pytest.MonkeyPatch, session_s: float, joins: int
) -> tuple[list[int], Screen, DroppingChatServer]:
    """Run a terminal chat against a ``DroppingChatServer`` whose sessions last
    ``session_s``, until the chat gives up or has joined ``joins`` times; then quit."""
    monkeypatch.setattr(cli_chat, "RECONNECT_DELAY_S", 0.01)
    monkeypatch.setattr(cli_chat, "STABLE_SESSION_S", 0.1)
    server = DroppingChatServer(session_s, keep=joins)
    screen = Screen()
    lines_in, lines_out = trio.open_memory_channel[str | None](16)
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            chat = TerminalChat(Endpoints("127.0.0.1", {"chat": port}), "1234", "bob", None, screen)
            async with trio.open_nursery() as session:
                status = await_status(session, chat, lines_out)
                while not status and screen.count("* joined room") < joins:
                    await screen.wait_change()
                if not status:
                    await lines_in.send(None)
            nursery.cancel_scope.cancel()
    return status, screen, server


async def test_a_healthy_session_starts_the_reconnect_count_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    joins = cli_chat.RECONNECT_TRIES + 3
    status, screen, server = await drops_until_exit_or_joins(monkeypatch, 0.3, joins)
    assert status == [EXIT_OK], screen.lines
    assert screen.count("* joined room") == joins
    assert screen.count("* connection lost (EOF); reconnecting...") == joins - 1
    # The first join shows the last messages; every rejoin, exactly what was missed.
    assert server.history_requests == ["HISTORY limit 20"] + ["HISTORY since 0 limit 100"] * (
        joins - 1
    )


async def test_sessions_dropped_at_once_use_up_the_reconnects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    status, screen, _ = await drops_until_exit_or_joins(monkeypatch, 0.0, 100)
    assert status == [EXIT_FAILED]
    assert screen.count("* joined room") == cli_chat.RECONNECT_TRIES + 1
    assert screen.lines[-1] == "* disconnected: EOF the server closed the connection"
