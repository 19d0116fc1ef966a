"""The terminal chat in-process: commands, and a reconnect that shows exactly what was
missed while the server restarted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio

from syncrox.cli.chat import TerminalChat
from syncrox.client.endpoints import Endpoints
from syncrox.config import Config
from syncrox.services.context import BoundPorts
from tests.conftest import IO_TIMEOUT_S
from tests.services.chat_helpers import ChatServer, chat_server


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
