"""``syncrox-trio chat --room R --user U [--token T]``: chat from a terminal.

Type a line to send it; others' messages appear as they arrive. Commands: ``/img PATH``
uploads an image, ``/get ID [FILE]`` saves one, ``/history [N]`` shows the last N
messages, ``/who`` lists who is here, ``/quit`` leaves (so does end of input).

If the connection drops, the client reconnects and fetches exactly what it missed
(``HISTORY since <last id>``) before showing new messages again. Peer text is printed with
control and bidi-override characters escaped, so nobody can rewrite your terminal.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Callable
from pathlib import Path

import trio

from syncrox.cli.common import (
    CONNECT_TIMEOUT_S,
    EXIT_FAILED,
    EXIT_OK,
    add_client_options,
    endpoints_from_args,
    join_room,
    run_command,
)
from syncrox.client.chat import ChatClient, Disconnected, describe, printable
from syncrox.client.endpoints import Endpoints
from syncrox.errors import ProtocolError, RequestRefused, SyncroxError
from syncrox.protocol import chat as proto

SCROLLBACK = 500
RECONNECT_TRIES = 5  # in a row: a healthy session starts the count (and the wait) over
RECONNECT_DELAY_S = 1.0  # times the number of the try
# A session that stayed up this long after joining (and catching up) was healthy. A shorter
# one still counts as a failed try, so a server that admits and drops us at once is not
# retried forever.
STABLE_SESSION_S = 30.0
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # the server has its own, smaller limit
# Connection ends that a reconnect may cure; a refusal (e.g. NAME_TAKEN) will not be.
TRANSIENT = frozenset({"EOF", "BROKEN", proto.OVERFLOW, "TIMEOUT"})
HELP = "type a line to send it | /img PATH | /get ID [FILE] | /history [N] | /who | /quit"

Output = Callable[[str], None]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("chat", help="chat in a room from the terminal")
    add_client_options(parser)
    parser.add_argument(
        "--reserve",
        action="store_true",
        help="join through the room manager first, so --user is reserved for you",
    )
    parser.add_argument("--history", type=int, default=20, metavar="N", help="show N at start")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if not args.room or not args.user:
        raise SyncroxError("chat needs --room CODE and --user NAME")
    endpoints = endpoints_from_args(args)

    async def main() -> int:
        token = args.token
        if args.reserve and not token:
            token = await join_room(endpoints, args)
            print(f"* your token for {args.user} in {args.room}: {token}", file=sys.stderr)
        session = TerminalChat(endpoints, args.room, args.user, token, _print)
        return await session.run(args.history)

    return run_command(main)


def _print(text: str) -> None:
    print(text, flush=True)


class TerminalChat:
    def __init__(
        self, endpoints: Endpoints, room: str, user: str, token: str | None, out: Output
    ) -> None:
        self.endpoints = endpoints
        self.room = room
        self.user = user
        self.token = token
        self.out = out
        self.last_id = 0
        self.scrollback: collections.deque[proto.RoomEvent] = collections.deque(maxlen=SCROLLBACK)
        self.quit = False
        self.caught_up = False  # a session got as far as its history once: later ones resume
        self.session_began: float | None = None  # when the current session caught up

    async def run(self, history: int) -> int:
        lines_in, lines_out = trio.open_memory_channel[str | None](16)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_stdin, lines_in)
            status = await self._converse(lines_out, history)
            nursery.cancel_scope.cancel()
        return status

    async def _converse(self, lines: trio.MemoryReceiveChannel[str | None], history: int) -> int:
        failures = 0  # reconnects since the last healthy session
        while True:
            reason = await self._connection(lines, history, resume=self.caught_up)
            if self.quit:
                return EXIT_OK
            if self._was_healthy():
                failures = 0
            if reason.code not in TRANSIENT or failures >= RECONNECT_TRIES:
                self.out(describe(reason))
                return EXIT_FAILED
            failures += 1
            self.out(f"* connection lost ({reason.code}); reconnecting...")
            await trio.sleep(RECONNECT_DELAY_S * failures)

    def _was_healthy(self) -> bool:
        """Whether the session that just ended stayed up ``STABLE_SESSION_S`` after joining."""
        began = self.session_began
        return began is not None and trio.current_time() - began >= STABLE_SESSION_S

    async def _connection(
        self, lines: trio.MemoryReceiveChannel[str | None], history: int, resume: bool
    ) -> Disconnected:
        self.session_began = None
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                stream = await trio.open_tcp_stream(
                    self.endpoints.host, self.endpoints.port("chat")
                )
        except (OSError, trio.TooSlowError) as exc:
            return Disconnected("BROKEN", str(exc) or "cannot connect")
        async with ChatClient.over(stream) as client:
            return await self._chat(client, lines, history, resume)

    async def _chat(
        self,
        client: ChatClient,
        lines: trio.MemoryReceiveChannel[str | None],
        history: int,
        resume: bool,
    ) -> Disconnected:
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                welcome = await client.hello(self.user, self.room, self.token)
                self.out(f"* joined room {welcome.room} as {welcome.user}. {HELP}")
                if resume:
                    await self._resume(client)
                elif history > 0:
                    page = await client.history(limit=history)
                    self._show_history(page.events)
        except RequestRefused as exc:
            return Disconnected(exc.code, exc.message)
        except (ProtocolError, trio.TooSlowError) as exc:
            return Disconnected("BROKEN", str(exc))
        self.caught_up = True
        self.session_began = trio.current_time()
        reason = Disconnected("EOF", "closed")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_lines, client, lines, nursery.cancel_scope)
            reason = await self._show_events(client)
            nursery.cancel_scope.cancel()
        return reason

    async def _resume(self, client: ChatClient) -> None:
        since = self.last_id
        while True:
            page = await client.history(since=since, limit=100)
            self._show_history(page.events)
            if not page.more or not page.events:
                return
            since = page.events[-1].id

    def _show_history(self, events: list[proto.RoomEvent]) -> None:
        for event in events:
            self._remember(event)
            self.out(describe(event))

    def _remember(self, event: proto.RoomEvent) -> None:
        if event.id > self.last_id:
            self.last_id = event.id
            self.scrollback.append(event)

    async def _show_events(self, client: ChatClient) -> Disconnected:
        async for event in client.events:
            if isinstance(event, Disconnected):
                return event
            if isinstance(event, proto.ChatMessage | proto.ImageMessage):
                self._remember(event)
            self.out(describe(event))
        return client.closed or Disconnected("EOF", "closed")

    async def _send_lines(
        self,
        client: ChatClient,
        lines: trio.MemoryReceiveChannel[str | None],
        scope: trio.CancelScope,
    ) -> None:
        async for line in lines:
            if line is None or line.strip() == "/quit":
                self.quit = True
                try:
                    with trio.move_on_after(CONNECT_TIMEOUT_S):
                        await client.bye()
                except ProtocolError:
                    pass
                scope.cancel()
                return
            try:
                with trio.fail_after(CONNECT_TIMEOUT_S * 6):
                    await self._act(client, line)
            except ProtocolError as exc:  # refused by the server, or here before sending
                self.out(f"! refused: {exc.code} {printable(exc.message)}")
            except (OSError, SyncroxError, trio.TooSlowError) as exc:
                self.out(f"! {exc}")

    async def _act(self, client: ChatClient, line: str) -> None:
        word, _, rest = line.strip().partition(" ")
        match word:
            case "/img":
                await self._upload(client, Path(rest.strip()))
            case "/get":
                await self._download(client, rest.split())
            case "/history":
                await self._history(client, int(rest) if rest.strip().isdigit() else 20)
            case "/who":
                self.out("* here: " + ", ".join(await client.who()))
            case "/help":
                self.out(HELP)
            case _ if word.startswith("/") and not word.startswith("//"):
                self.out(f"! unknown command {word}. {HELP}")
            case _ if line.strip():
                # "//text" sends "/text": the one way to start a message with a slash.
                await client.send(line[1:] if line.startswith("//") else line)

    async def _upload(self, client: ChatClient, path: Path) -> None:
        data = await trio.Path(path).read_bytes()
        if len(data) > MAX_UPLOAD_BYTES:
            raise SyncroxError(f"{path} is too large")
        name = "_".join(path.name.split()) or "image"
        image_id = await client.send_image(name, data)
        self.out(f"* uploaded {printable(name)} as #{image_id}")

    async def _download(self, client: ChatClient, args: list[str]) -> None:
        if not args or not args[0].isdigit():
            raise SyncroxError("usage: /get ID [FILE]")
        image = await client.get_image(int(args[0]))
        target = trio.Path(args[1] if len(args) > 1 else image.image.name)
        if await target.exists():
            raise SyncroxError(f"{target} exists; give another file name")
        await target.write_bytes(image.data)
        self.out(f"* saved #{image.id} ({image.image.size} bytes) to {target}")

    async def _history(self, client: ChatClient, count: int) -> None:
        # The server replays what was said before this connection joined; what came
        # after arrived live and is in the local scrollback. Together: the last N.
        page = await client.history(limit=max(1, min(count, 100)))
        merged = {event.id: event for event in page.events}
        merged.update({event.id: event for event in self.scrollback})
        for event_id in sorted(merged)[-count:]:
            self.out(describe(merged[event_id]))


async def _read_stdin(lines: trio.MemorySendChannel[str | None]) -> None:
    """Terminal lines into ``lines``; ``None`` at end of input. A worker thread reads, so
    this works the same for a terminal, a pipe or a file."""
    async with lines:
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                await lines.send(None)
                return
            await lines.send(line.rstrip("\r\n"))
