"""History replay and resume: a client that reconnects with ``since <id>`` gets exactly
what it missed, while messages keep flowing — nothing lost, nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from syncrox.client.chat import ChatClient
from syncrox.config import Config
from syncrox.protocol import chat as proto
from tests.conftest import IO_TIMEOUT_S
from tests.services.chat_helpers import ChatServer, chat_server, next_event, with_chat
from tests.services.helpers import raw_client


@pytest.fixture
async def server(config: Config) -> AsyncIterator[ChatServer]:
    async with chat_server(with_chat(config, msg_burst=10_000, history_max_limit=7)) as running:
        yield running


async def resume(client: ChatClient, since: int) -> list[proto.RoomEvent]:
    """Page through ``HISTORY since`` until nothing more is missing."""
    missed: list[proto.RoomEvent] = []
    while True:
        page = await client.history(since=since, limit=5)
        missed += page.events
        if not page.more:
            return missed
        since = page.events[-1].id


async def test_resume_after_disconnect_while_others_keep_talking(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            seen: list[int] = []
            async with server.client("bob", code) as bob:
                for n in range(5):
                    await ann.send(f"before {n}")
                while len(seen) < 5:
                    event = await next_event(bob, proto.ChatMessage)
                    assert isinstance(event, proto.ChatMessage)
                    seen.append(event.id)
            last_seen = bob.last_id
            assert last_seen == 5
            for n in range(23):  # bob is away
                await ann.send(f"away {n}")

            talking = trio.Event()

            async def keep_talking() -> None:
                for n in range(30):
                    await ann.send(f"during {n}")
                    if n == 2:
                        talking.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(keep_talking)
                await talking.wait()
                async with server.client() as bob:
                    welcome = await bob.hello("bob", code)
                    missed = await resume(bob, since=last_seen)
                    live: list[int] = []
                    while len(seen) + len(missed) + len(live) < 5 + 23 + 30:
                        event = await next_event(bob, proto.ChatMessage)
                        assert isinstance(event, proto.ChatMessage)
                        live.append(event.id)
    ids = seen + [event.id for event in missed] + live
    assert ids == list(range(1, 5 + 23 + 30 + 1))  # every id once, in order
    assert all(event.id <= welcome.last_id for event in missed)
    assert all(message_id > welcome.last_id for message_id in live)


async def test_plain_history_is_the_newest_before_joining(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            for n in range(1, 11):
                await ann.send(f"m{n}")
        async with server.client("bob", code) as bob:
            page = await bob.history(limit=3)
            assert [e.id for e in page.events] == [8, 9, 10]
            assert page.more  # older ones exist
            everything = await bob.history(limit=1000)  # capped by history_max_limit=7
            assert [e.id for e in everything.events] == [4, 5, 6, 7, 8, 9, 10]
            await bob.send("after joining")
            # Replay stops at the join: later messages reached bob live already.
            assert [e.id for e in (await bob.history()).events][-1] == 10
            assert (await bob.history(since=10)).events == []


async def test_history_replays_images_and_survives_a_restart(config: Config) -> None:
    config = with_chat(config, msg_burst=100)
    image = b"GIF89a" + bytes(100)
    with trio.fail_after(IO_TIMEOUT_S):
        async with chat_server(config) as server:
            code, token = await server.create_room("ann")
            async with server.client("ann", code, token) as ann:
                await ann.send("text")
                await ann.send_image("pic.gif", image)
        async with chat_server(config) as server:
            async with server.client("ann", code, token) as ann:
                page = await ann.history()
                assert [type(e) for e in page.events] == [proto.ChatMessage, proto.ImageMessage]
                assert await ann.send("ids continue after a restart") == 3
                assert (await ann.get_image(2)).data == image


async def test_history_reply_bytes(server: ChatServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            await ann.send("one")
            await ann.send("two")
        async with raw_client(server.chat_port) as raw:
            assert await raw.ask(f"HELLO bob {code}") == f"OK HELLO {code} bob 2"
            first = await raw.ask("HISTORY since 0 limit 1")
            assert first.startswith("HIST MSG 1 ")
            assert first.endswith(" ann one")
            assert await raw.line() == "HISTORY_END 1 1"
            assert (await raw.ask("HISTORY since 1")).startswith("HIST MSG 2 ")
            assert await raw.line() == "HISTORY_END 1 0"
            assert await raw.ask("HISTORY since 2") == "HISTORY_END 0 0"
