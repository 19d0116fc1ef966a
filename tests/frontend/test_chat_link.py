"""The web UI's live chat link (``frontend/backend/chat.py``) against a real server in a
subprocess: what other clients do reaches its snapshot, images come back by id, and after a
dropped connection (and a server restart) it resumes with nothing missing, nothing twice.

The link runs in a thread of its own, as in the UI; the tests drive other people with the
plain Trio client and poll the link's snapshot with a deadline.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from PIL import Image

from backend.chat import ChatLink, ChatView, ImageMessage, Notice, TextMessage, picture
from syncrox.client.chat import ChatClient
from syncrox.client.endpoints import Endpoints
from syncrox.client.rooms import RoomsClient
from tests.e2e.process import running_server

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
IO_TIMEOUT_S = 20.0
# A reconnect waits up to 8 s between attempts (backend.chat.RECONNECT_DELAYS_S).
RESUME_TIMEOUT_S = 40.0
POLL_S = 0.05


@dataclass
class Room:
    code: str
    tokens: dict[str, str]  # user -> membership token


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def ports(data_dir: Path) -> Iterator[dict[str, int]]:
    with running_server(data_dir) as (_, found):
        yield found


async def make_room(ports: dict[str, int], *others: str) -> Room:
    with trio.fail_after(IO_TIMEOUT_S):
        async with RoomsClient.connect(HOST, ports["rooms"]) as rooms:
            code, token = await rooms.create("alice")
            tokens = {"alice": token}
            for user in others:
                tokens[user] = await rooms.join(code, user)
    return Room(code, tokens)


async def as_peer(
    port: int, room: Room, user: str, act: Callable[[ChatClient], Awaitable[None]]
) -> None:
    """Connect as ``user`` with the plain client, ``act``, leave."""
    with trio.fail_after(IO_TIMEOUT_S):
        async with ChatClient.connect(HOST, port) as client:
            await client.hello(user, room.code, room.tokens[user])
            await act(client)


def sending(*texts: str) -> Callable[[ChatClient], Awaitable[None]]:
    async def act(client: ChatClient) -> None:
        for text in texts:
            await client.send(text)

    return act


def start_link(chat_port: int, room: Room, user: str = "alice") -> ChatLink:
    where = Endpoints(HOST, {"chat": chat_port})
    return ChatLink(where, room.code, user, room.tokens[user]).start()


async def wait_for(
    link: ChatLink, check: Callable[[ChatView], bool], timeout_s: float = IO_TIMEOUT_S
) -> ChatView:
    """The first snapshot that passes ``check``, polled until ``timeout_s``."""
    with trio.move_on_after(timeout_s):
        while True:  # the link lives in another thread: there is nothing to wait on but time
            view = link.snapshot()
            if check(view):
                return view
            await trio.sleep(POLL_S)
    raise AssertionError(f"not seen within {timeout_s} s; last snapshot: {link.snapshot()}")


def texts(view: ChatView) -> list[str]:
    return [entry.content for entry in view.entries if isinstance(entry, TextMessage)]


def notices(view: ChatView) -> list[str]:
    return [entry.text for entry in view.entries if isinstance(entry, Notice)]


def message_ids(view: ChatView) -> list[int]:
    return [entry.id for entry in view.entries if not isinstance(entry, Notice)]


def tiny_png(width: int = 1, height: int = 1) -> bytes:
    """A valid greyscale PNG, built by hand (zlib + struct), so the bytes are known."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def links() -> Iterator[list[ChatLink]]:
    """Links a test starts: closed and joined at its end, whatever happened."""
    started: list[ChatLink] = []
    yield started
    for link in started:
        link.close()
    for link in started:
        assert link.thread.join(IO_TIMEOUT_S), "the link's thread did not end"


async def test_history_then_live_messages_each_once_and_own_sends(
    ports: dict[str, int], links: list[ChatLink]
) -> None:
    room = await make_room(ports, "bob")
    await as_peer(ports["chat"], room, "bob", sending("before alice came"))
    link = start_link(ports["chat"], room)
    links.append(link)
    await wait_for(link, lambda view: view.status == "connected")
    await as_peer(ports["chat"], room, "bob", sending("one", "two"))
    own_id = await trio.to_thread.run_sync(link.send, "from alice")
    view = await wait_for(link, lambda view: "from alice" in texts(view))
    assert texts(view) == ["before alice came", "one", "two", "from alice"]
    assert message_ids(view) == sorted(set(message_ids(view)))
    assert message_ids(view)[-1] == own_id


async def test_presence_typing_and_join_leave_notices(
    ports: dict[str, int], links: list[ChatLink]
) -> None:
    room = await make_room(ports, "bob")
    link = start_link(ports["chat"], room)
    links.append(link)
    await wait_for(link, lambda view: view.present == ["alice"])

    async def visit(client: ChatClient) -> None:
        view = await wait_for(link, lambda view: view.present == ["alice", "bob"])
        assert notices(view) == ["bob joined"]
        await client.typing()
        view = await wait_for(link, lambda view: view.typing == ["bob"])

    await as_peer(ports["chat"], room, "bob", visit)
    view = await wait_for(link, lambda view: view.present == ["alice"])
    assert notices(view) == ["bob joined", "bob left"]
    assert view.typing == []  # a user who left is typing no more


async def test_an_image_is_fetched_by_id_once_asked_and_a_bad_one_says_why(
    ports: dict[str, int], links: list[ChatLink]
) -> None:
    room = await make_room(ports, "bob")
    link = start_link(ports["chat"], room)
    links.append(link)
    await wait_for(link, lambda view: view.status == "connected")
    png = tiny_png()
    # The CDN checks the magic bytes only: this passes, and cannot be decoded.
    broken = b"\x89PNG\r\n\x1a\n" + b"not really an image"

    async def send_images(client: ChatClient) -> None:
        await client.send_image("dot.png", png)
        await client.send_image("broken.png", broken)

    await as_peer(ports["chat"], room, "bob", send_images)
    view = await wait_for(link, lambda view: len(message_ids(view)) == 2)
    images = [entry for entry in view.entries if isinstance(entry, ImageMessage)]
    assert [(image.image.name, image.image.size) for image in images] == [
        ("dot.png", len(png)),
        ("broken.png", len(broken)),
    ]
    assert view.images == {}, "images are fetched on demand only"
    for image in images:
        link.want_image(image.id)
    view = await wait_for(link, lambda view: len(view.images) + len(view.image_failures) == 2)
    assert view.images[images[0].id].data == png
    assert view.images[images[0].id].output_format == "PNG"
    assert "cannot be decoded" in view.image_failures[images[1].id]


def test_a_wide_image_is_scaled_down_once_for_the_page() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 50), "red").save(buffer, "WEBP")
    shown = picture(buffer.getvalue())
    assert shown.output_format == "PNG"
    with Image.open(io.BytesIO(shown.data)) as image:
        assert image.format == "PNG" and image.size == (800, 20)
    assert picture(tiny_png()).data == tiny_png()  # shown as sent: no re-encoding


class Cutter:
    """A TCP relay between the link and the chat service that the test can cut, hold down
    (new connections are closed at once) and point at another server."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.down = False
        self.port = 0
        self._scopes: set[trio.CancelScope] = set()

    async def serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    def cut(self) -> None:
        self.down = True
        for scope in self._scopes:
            scope.cancel()

    async def _relay(self, downstream: trio.SocketStream) -> None:
        async with downstream:
            if self.down:
                return
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    async with (
                        await trio.open_tcp_stream(HOST, self.target) as upstream,
                        trio.open_nursery() as nursery,
                    ):
                        nursery.start_soon(_pump, downstream, upstream, nursery.cancel_scope)
                        await _pump(upstream, downstream, nursery.cancel_scope)
                except (OSError, trio.BrokenResourceError):
                    pass
                finally:
                    self._scopes.discard(scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    finally:
        done.cancel()


async def test_resumes_after_a_cut_and_a_server_restart_with_nothing_missing_or_twice(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, links: list[ChatLink]
) -> None:
    # Tiny history pages, so that catching up takes several HISTORY since ... requests.
    monkeypatch.setenv("SYNCROX_CHAT_HISTORY_MAX_LIMIT", "2")
    with ExitStack() as first:
        _, ports = first.enter_context(running_server(data_dir))
        room = await make_room(ports, "bob")
        async with trio.open_nursery() as nursery:
            cutter = Cutter(ports["chat"])
            await nursery.start(cutter.serve)
            link = start_link(cutter.port, room)
            links.append(link)
            await wait_for(link, lambda view: view.status == "connected")
            await as_peer(ports["chat"], room, "bob", sending("m1", "m2"))
            await wait_for(link, lambda view: texts(view) == ["m1", "m2"])

            cutter.cut()  # the connection drops, and stays down
            await wait_for(link, lambda view: view.status != "connected")
            await as_peer(ports["chat"], room, "bob", sending("m3", "m4"))
            first.close()  # the server stops, and starts again on the same data
            with running_server(data_dir) as (_, restarted):
                await as_peer(restarted["chat"], room, "bob", sending("m5", "m6", "m7"))
                cutter.target, cutter.down = restarted["chat"], False
                view = await wait_for(link, lambda v: "m7" in texts(v), RESUME_TIMEOUT_S)
                assert texts(view) == ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
                assert message_ids(view) == sorted(set(message_ids(view)))
                # Live again: a new message arrives once, after the missed ones.
                await as_peer(restarted["chat"], room, "bob", sending("m8"))
                view = await wait_for(link, lambda v: "m8" in texts(v))
                assert texts(view)[-2:] == ["m7", "m8"]
                assert view.status == "connected"
            nursery.cancel_scope.cancel()
