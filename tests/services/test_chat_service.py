"""The chat service with several real clients over loopback: ordering, isolation,
presence, admission, rate limits and bad input."""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator

import pytest
import trio

from syncrox.client.chat import ChatClient, Disconnected
from syncrox.config import Config
from syncrox.errors import RequestRefused
from syncrox.protocol import chat as proto
from tests.conftest import IO_TIMEOUT_S
from tests.services.chat_helpers import PNG_HEAD, ChatServer, chat_server, next_event, with_chat
from tests.services.helpers import raw_client


@pytest.fixture
async def server(config: Config) -> AsyncIterator[ChatServer]:
    async with chat_server(with_chat(config, msg_burst=1000)) as running:
        yield running


async def test_every_client_sees_every_message_in_one_order(server: ChatServer) -> None:
    code, _ = await server.create_room()
    per_sender = 25
    with trio.fail_after(IO_TIMEOUT_S):
        async with (
            server.client("ann", code) as ann,
            server.client("ben", code) as ben,
            server.client("cat", code) as cat,
        ):
            clients = {"ann": ann, "ben": ben, "cat": cat}
            seen: dict[str, list[proto.ChatMessage]] = {name: [] for name in clients}
            acked: dict[str, list[int]] = {name: [] for name in clients}

            async def send(name: str) -> None:
                for n in range(per_sender):
                    acked[name].append(await clients[name].send(f"{name} {n}"))

            async def collect(name: str) -> None:
                while len(seen[name]) < 3 * per_sender:
                    event = await next_event(clients[name], proto.ChatMessage)
                    assert isinstance(event, proto.ChatMessage)
                    seen[name].append(event)

            async with trio.open_nursery() as nursery:
                for name in clients:
                    nursery.start_soon(send, name)
                    nursery.start_soon(collect, name)

    reference = seen["ann"]
    assert [m.id for m in reference] == list(range(1, 3 * per_sender + 1))
    assert seen["ben"] == reference
    assert seen["cat"] == reference
    assert all(a.ts_ms <= b.ts_ms for a, b in itertools.pairwise(reference))
    for name in clients:
        mine = [m for m in reference if m.user == name]
        assert [m.content for m in mine] == [f"{name} {n}" for n in range(per_sender)]
        assert [m.id for m in mine] == acked[name]


async def test_rooms_are_isolated(server: ChatServer) -> None:
    code_a, _ = await server.create_room()
    code_b, _ = await server.create_room()
    image = PNG_HEAD + b"secret pixels"
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code_a) as ann, server.client("bob", code_b) as bob:
            async with server.client("eve", code_a) as eve:
                await eve.typing()
                await eve.send("for room A only")
                image_id = await eve.send_image("secret.png", image)
            await ann.send("still room A")
            assert await bob.who() == ["bob"]
            await bob.send("room B")
            # Bob's stream holds only room B: his own message and nothing else.
            event = await next_event(bob)
            assert event == proto.ChatMessage(1, event.ts_ms, "bob", "room B")  # type: ignore[union-attr]
            assert (await bob.history()).events == []
            for target in (image_id, "secret.png"):
                with pytest.raises(RequestRefused) as info:
                    await bob.get_image(target)
                assert info.value.code == "NOT_FOUND"
            assert bob.events.statistics().current_buffer_used == 0
            assert (await ann.get_image(image_id)).data == image


async def test_join_leave_who_and_typing(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            async with server.client("Ben", code) as ben:
                assert await next_event(ann) == proto.Joined("Ben")
                assert await ann.who() == ["ann", "Ben"]
                await ben.typing()
                await ben.typing()  # within the interval: acknowledged, not relayed
                assert await next_event(ann) == proto.TypingNotice("Ben")
                await ben.send("hi")
                assert isinstance(await next_event(ann), proto.ChatMessage)
            assert await next_event(ann) == proto.Left("Ben")
            assert await ann.who() == ["ann"]


async def test_admission_follows_the_room_manager(server: ChatServer) -> None:
    code, zed_token = await server.create_room("zed")
    other = "1000" if code != "1000" else "1001"
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client() as client:
            for user, room, token, error in [
                ("zed", code, None, "NAME_TAKEN"),  # reserved by the creator's token
                ("ZED", code, None, "NAME_TAKEN"),  # case-insensitively
                ("amy", code, zed_token, "BAD_TOKEN"),  # the token is zed's
                ("amy", other, None, "NOT_FOUND"),
            ]:
                with pytest.raises(RequestRefused) as info:
                    await client.hello(user, room, token)
                assert info.value.code == error
            welcome = await client.hello("zed", code, zed_token)
            assert welcome == proto.Welcome(code, "zed", 0)
            with pytest.raises(RequestRefused) as info:
                await client.hello("zed", code, zed_token)
            assert info.value.code == "ALREADY_JOINED"


async def test_a_live_name_is_not_shared_but_a_token_holder_reclaims_it(
    server: ChatServer,
) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("sam", code) as squatter, server.client() as second:
            with pytest.raises(RequestRefused) as info:
                await second.hello("Sam", code)
            assert info.value.code == "NAME_TAKEN"
            token = await server.join_room(code, "sam")  # the real sam reserves the name
            async with server.client("sam", code, token) as owner:
                gone = await next_event(squatter, Disconnected)
                assert gone == Disconnected("DISPLACED", "sam joined with its token")
                async with server.client("sam", code, token) as owner_again:
                    assert await owner_again.who() == ["sam"]
                    await owner.send("same member, two connections")


async def test_wrong_room_codes_are_rate_limited_per_address(server: ChatServer) -> None:
    code, _ = await server.create_room()
    wrong = [c for c in ("1000", "1001", "1002", "1003", "1004", "1005") if c != code][:5]
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client() as guesser:
            for guess in wrong:
                with pytest.raises(RequestRefused) as info:
                    await guesser.hello("guess", guess)
                assert info.value.code == "NOT_FOUND"
            with pytest.raises(RequestRefused) as info:
                await guesser.hello("guess", code)  # even the right code, for now
            assert info.value.code == "RATE_LIMITED"


async def test_messages_are_rate_limited_per_user(config: Config) -> None:
    async with chat_server(with_chat(config, msg_burst=3, msg_refill_s=60.0)) as server:
        code, _ = await server.create_room()
        with trio.fail_after(IO_TIMEOUT_S):
            async with server.client("ann", code) as ann, server.client("bob", code) as bob:
                for n in range(3):
                    await ann.send(f"{n}")
                with pytest.raises(RequestRefused) as info:
                    await ann.send("one too many")
                assert info.value.code == "RATE_LIMITED"
                assert await bob.send("bob has his own budget") == 4


async def test_content_is_stored_and_sent_exactly_as_written(server: ChatServer) -> None:
    code, _ = await server.create_room()
    texts = ["<img src=x onerror=alert(1)>", "  leading and trailing  ", "tab\there", "é 日本 🎉"]
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            for text in texts:
                await ann.send(text)
        async with server.client("bob", code) as bob:
            page = await bob.history()
    assert [e.content for e in page.events if isinstance(e, proto.ChatMessage)] == texts


BAD_REQUESTS = [
    (b"\x00\x01garbage!!\n", "BAD_COMMAND"),
    (b"FROB 1234\n", "BAD_COMMAND"),
    (b"HELLO alice\n", "BAD_ARGUMENT"),
    (b"HELLO Abu Bakar 1234\n", "BAD_ROOM"),
    (b"HELLO <script> 1234\n", "BAD_USER"),
    (b"MSG \x1b[2Jcleared\n", "BAD_ARGUMENT"),
    (b"MSG\n", "BAD_ARGUMENT"),
    (b"\xff\xfe\xfd\n", "BAD_UTF8"),
    (b"MSG " + b"x" * 5000 + b"\n", "LINE_TOO_LONG"),
    (b"GET_IMG ../../syncrox.db\n", "BAD_NAME"),
    (b"GET_IMG /etc/passwd\n", "BAD_NAME"),
    (b"GET_IMG 999\n", "NOT_FOUND"),
    (b"HISTORY since -1\n", "BAD_ARGUMENT"),
    (b"IMG ../evil.png " + base64.b64encode(PNG_HEAD) + b"\n", "BAD_NAME"),
    (b"IMG a.png QQ==QUJD\n", "BAD_ARGUMENT"),
    (b"IMG a.svg " + base64.b64encode(b"<svg onload=alert(1)>" * 3) + b"\n", "BAD_IMAGE"),
    (b"IMG a.png " + base64.b64encode(b"GIF") + b"\n", "BAD_IMAGE"),
    (b"IMG a.png\n", "BAD_ARGUMENT"),
    (b"HELLO zed 1234\n", "ALREADY_JOINED"),
    (b"\n", "BAD_COMMAND"),
]


@pytest.mark.parametrize(("request_line", "code"), BAD_REQUESTS)
async def test_bad_input_gets_an_error_and_the_connection_keeps_working(
    server: ChatServer, request_line: bytes, code: str
) -> None:
    room, _ = await server.create_room("owner")
    with trio.fail_after(IO_TIMEOUT_S):
        async with raw_client(server.chat_port) as client:
            assert (await client.ask(f"HELLO zed {room}")).startswith("OK HELLO ")
            await client.send(request_line)
            reply = await client.line()
            assert reply is not None
            assert reply.startswith(f"ERR {code} ")
            assert await client.ask("PING") == "PONG"


async def test_requests_before_hello_are_refused(server: ChatServer) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        async with raw_client(server.chat_port) as client:
            for line in ("MSG hi", "WHO", "HISTORY", "TYPING", "GET_IMG 1"):
                assert (await client.ask(line)).startswith("ERR NOT_MEMBER ")
            await client.send(b"IMG a.png " + base64.b64encode(PNG_HEAD * 100) + b"\n")
            assert ((await client.line()) or "").startswith("ERR NOT_MEMBER ")
            assert await client.ask("PING") == "PONG"
            assert await client.ask("BYE") == "OK BYE"
            assert await client.closed()


async def test_garbage_floods_never_kill_the_server(server: ChatServer) -> None:
    code, _ = await server.create_room()
    junk = bytes(range(256)) * 64
    with trio.fail_after(IO_TIMEOUT_S):
        async with raw_client(server.chat_port) as flood:
            await flood.send(junk + b"\n" * 20)
            replies = []
            while (line := await flood.line()) is not None:
                replies.append(line)
            assert replies[-1].startswith("ERR TOO_MANY_ERRORS")
            assert len(replies) == 11
        async with raw_client(server.chat_port) as half:
            await half.send(b"IMG a.png " + base64.b64encode(PNG_HEAD * 1000)[:-7])  # no LF
        async with raw_client(server.chat_port) as endless:
            await endless.send(b"MSG " + b"y" * 100_000)  # a line that never ends
            assert ((await endless.line()) or "").startswith("ERR LINE_TOO_LONG")
            async with server.client("ann", code) as ann:
                assert await ann.send("still serving") == 1


async def test_bye_closes_and_a_rejoin_sees_the_room(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            await ann.send("one")
            await ann.bye()
            assert await next_event(ann, Disconnected) == Disconnected(
                "EOF", "the server closed the connection"
            )
        async with ChatClient.connect("127.0.0.1", server.chat_port) as again:
            assert (await again.hello("ann", code)).last_id == 1
