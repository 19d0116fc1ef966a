"""The chat client library: request/reply matching, events, refusals, keepalive, and a
misbehaving server."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
import trio

from syncrox.client.chat import ChatClient, Disconnected, describe, printable
from syncrox.config import Config
from syncrox.errors import BUSY, DISPLACED, LocalProtocolError, ProtocolError, RequestRefused
from syncrox.protocol import chat as proto
from tests.conftest import IO_TIMEOUT_S
from tests.services.chat_helpers import (
    PNG_HEAD,
    ChatServer,
    chat_server,
    next_event,
    record_chat_services,
    with_chat,
    with_tcp,
)


@pytest.fixture
async def server(config: Config) -> AsyncIterator[ChatServer]:
    async with chat_server(with_chat(config, msg_burst=1000)) as running:
        yield running


async def test_refusals_raise_with_their_code_and_the_client_goes_on(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            with pytest.raises(RequestRefused) as info:
                await ann.get_image(42)
            assert info.value.code == "NOT_FOUND"
            with pytest.raises(RequestRefused) as info:
                await ann.hello("ann", code)
            assert info.value.code == "ALREADY_JOINED"
            assert await ann.send("fine") == 1


async def test_bad_requests_are_refused_locally_before_sending(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            for call, error in [
                (functools.partial(ann.send, "   "), "BAD_ARGUMENT"),
                (functools.partial(ann.send, "two\nlines"), "BAD_ARGUMENT"),
                (functools.partial(ann.send_image, "../x.png", b"GIF89a"), "BAD_NAME"),
                (functools.partial(ann.send_image, "my cat.png", b"GIF89a"), "BAD_NAME"),
                (functools.partial(ann.get_image, "a/b"), "BAD_NAME"),
            ]:
                with pytest.raises(LocalProtocolError) as info:
                    await call()
                assert info.value.code == error
            with pytest.raises(LocalProtocolError):
                await ann.hello("two words", code)
            assert await ann.who() == ["ann"]


async def test_replies_and_events_are_told_apart(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann, server.client("bob", code) as bob:
            assert await next_event(ann) == proto.Joined("bob")

            async def chatter() -> None:
                for n in range(30):
                    await bob.send(f"{n}")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(chatter)
                for _ in range(10):  # replies arrive between bob's live messages
                    assert await ann.who() == ["ann", "bob"]
                    await ann.ping()
            ids = []
            while len(ids) < 30:
                event = await next_event(ann, proto.ChatMessage)
                assert isinstance(event, proto.ChatMessage)
                ids.append(event.id)
            assert ids == list(range(1, 31))
            assert ann.last_id == 30


async def test_an_events_consumer_that_falls_behind_is_closed(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with (
            ChatClient.connect("127.0.0.1", server.chat_port, max_events=5) as lazy,
            server.client("bob", code) as bob,
        ):
            await lazy.hello("lazy", code)
            for n in range(10):
                await bob.send(f"{n}")
            with pytest.raises(ProtocolError) as info:  # noqa: PT012
                while True:  # never reads its events, only makes requests
                    await lazy.ping()
                    await trio.sleep(0.01)
            assert info.value.code == proto.OVERFLOW
            assert lazy.closed == Disconnected(proto.OVERFLOW, "events were not consumed; closing")


async def test_keepalive_outlives_the_idle_timeout(config: Config) -> None:
    async with chat_server(with_tcp(config, idle_timeout_s=0.4)) as server:
        code, _ = await server.create_room()
        with trio.fail_after(IO_TIMEOUT_S):
            async with (
                ChatClient.connect("127.0.0.1", server.chat_port, keepalive_s=0.1) as kept,
                ChatClient.connect("127.0.0.1", server.chat_port, keepalive_s=None) as idle,
            ):
                await kept.hello("kept", code)
                await idle.hello("idle", code)
                gone = await next_event(idle, Disconnected)
                assert gone == Disconnected("TIMEOUT", "idle for too long, closing")
                await trio.sleep(0.6)
                assert await kept.who() == ["kept"]
                with pytest.raises(ProtocolError):
                    await idle.who()


async def test_an_image_refused_busy_fails_that_request_only(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = record_chat_services(monkeypatch)
    limits = with_chat(config, max_concurrent_uploads=1, image_upload_timeout_s=0.2)
    async with chat_server(limits) as server:
        code, _ = await server.create_room()
        (service,) = services
        holder = object()
        with trio.fail_after(IO_TIMEOUT_S):
            await service.upload_slots.acquire_on_behalf_of(holder)  # every slot is taken
            async with server.client("ann", code) as ann:
                with pytest.raises(RequestRefused) as info:
                    await ann.send_image("cat.png", PNG_HEAD)
                assert info.value.code == BUSY
                assert info.value.message == "too many image uploads at once, try again later"
                assert ann.closed is None  # the server keeps the connection: so does the client
                assert await ann.send("still here") == 1
                service.upload_slots.release_on_behalf_of(holder)
                assert await ann.send_image("cat.png", PNG_HEAD) == 2
                assert await ann.who() == ["ann"]


async def test_busy_at_connect_ends_the_connection(config: Config) -> None:
    async with chat_server(with_tcp(config, max_connections=1)) as server:
        code, _ = await server.create_room()
        with trio.fail_after(IO_TIMEOUT_S):
            async with (
                server.client("ann", code) as ann,
                ChatClient.connect("127.0.0.1", server.chat_port, keepalive_s=None) as late,
            ):
                with pytest.raises(ProtocolError) as info:  # HELLO may cross the refusal
                    await late.hello("bob", code)
                assert info.value.code == BUSY
                refusal = Disconnected(BUSY, "too many connections, try again later")
                assert late.closed == refusal
                assert await next_event(late, Disconnected) == refusal
                assert await ann.who() == ["ann"]


async def fake_server(
    replies: bytes, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Answers any request with ``replies``, then keeps the connection open."""

    async def handle(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.send_all(replies)
        await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


@pytest.mark.parametrize(
    "replies",
    [
        b"SURPRISE\n",
        b"OK MSG 1\n",  # a reply to a request never made
        b"OK HELLO 1234 alice\n",
        b"IMG_DATA 1 3 image/png a.png YWJj\n",  # no GET_IMG pending
        b"MSG 1 2026-01-05T10:00:00.000Z alice \xff\n",
        b"x" * 70_000,
    ],
)
async def test_a_misbehaving_server_fails_pending_requests(replies: bytes) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(fake_server, replies)
            async with ChatClient.connect("127.0.0.1", port, keepalive_s=None) as client:
                with pytest.raises(ProtocolError):
                    await client.hello("alice", "1234")
                assert isinstance(client.closed, Disconnected)
            nursery.cancel_scope.cancel()


def test_terminal_rendering_escapes_what_could_hijack_a_terminal() -> None:
    assert printable("plain text, é 日本") == "plain text, é 日本"
    assert printable("\x1b[2J") == "\\u001b[2J"
    assert printable("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    line = describe(proto.ChatMessage(7, 0, "bob", "hi\u202e"))
    assert line.endswith("#7 bob: hi\\u202e")
    meta = proto.ImageMeta(10, "image/gif", "0" * 64, "a.gif")
    assert "/get 8" in describe(proto.ImageMessage(8, 0, "bob", meta))
    assert describe(Disconnected("OVERFLOW", "slow")) == "* disconnected: OVERFLOW slow"


async def test_displaced_ends_the_connection_even_with_a_request_pending() -> None:
    # A connection displaced by its name's token holder gets ERR DISPLACED, then the
    # server closes it: a request pending then fails with the connection; the line is not
    # taken for its answer as if the connection stayed usable.
    reply = b"ERR DISPLACED ann joined with its token\n"
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(fake_server, reply)
            async with ChatClient.connect("127.0.0.1", port, keepalive_s=None) as client:
                with pytest.raises(ProtocolError) as info:
                    await client.who()
                assert info.value.code == DISPLACED
                assert not isinstance(info.value, RequestRefused)
                assert client.closed == Disconnected(DISPLACED, "ann joined with its token")
            nursery.cancel_scope.cancel()


async def test_a_history_page_longer_than_any_server_sends_ends_the_connection() -> None:
    async def endless_history(stream: trio.SocketStream) -> None:
        await stream.receive_some()  # HELLO
        await stream.send_all(b"OK HELLO 1234 alice 0\n")
        await stream.receive_some()  # HISTORY
        record = b"HIST MSG 1 2026-11-30T06:52:09.599Z bob hi\n"
        with trio.move_on_after(IO_TIMEOUT_S):
            while True:
                await stream.send_all(record * 1000)

    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, endless_history, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            async with ChatClient.connect("127.0.0.1", port, keepalive_s=None) as client:
                await client.hello("alice", "1234")
                with pytest.raises(ProtocolError, match="history page longer"):
                    await client.history()
            nursery.cancel_scope.cancel()
