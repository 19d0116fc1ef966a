"""Bounded per-client queues: a stalled client never delays the others, and is told and
disconnected when its queue overflows."""

from __future__ import annotations

import socket

import trio

from syncrox.config import Config
from syncrox.protocol import chat as proto
from tests.conftest import IO_TIMEOUT_S
from tests.services.chat_helpers import chat_server, next_event, with_chat, with_tcp
from tests.services.helpers import RawClient

MESSAGES = 600
CONTENT_BYTES = 1000
# Broadcasting is a non-blocking append to each client's queue, so what bounds a fast
# client's delay is its own queue's drain time (well under a second on loopback), not the
# stalled peer: a broadcaster that waited for the stalled peer would stall for the whole
# send deadline below (30 s) — or until the test's fail_after.
FAST_CLIENT_BOUND_S = 1.0
SEND_TIMEOUT_S = 30.0
OUTBOX_BYTES = 64 * 1024


async def stalled_client(port: int) -> trio.SocketStream:
    """A connected client with a tiny receive buffer that we will not read from."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


async def test_a_stalled_client_does_not_slow_a_fast_one(config: Config) -> None:
    config = with_tcp(
        with_chat(config, msg_burst=10 * MESSAGES, outbox_max_bytes=OUTBOX_BYTES),
        send_timeout_s=SEND_TIMEOUT_S,
    )
    sent_at: dict[str, float] = {}
    delays: list[float] = []
    with trio.fail_after(IO_TIMEOUT_S):
        async with chat_server(config) as server:
            code, _ = await server.create_room()
            stream = await stalled_client(server.chat_port)
            stalled = RawClient(stream)
            await stalled.send(f"HELLO stalled {code}\n".encode())
            assert (await stalled.line() or "").startswith("OK HELLO")
            async with (
                stream,
                server.client("fast", code) as fast,
                server.client("sender", code) as sender,
            ):

                async def receive() -> None:
                    while len(delays) < MESSAGES:
                        event = await next_event(fast, proto.ChatMessage)
                        assert isinstance(event, proto.ChatMessage)
                        delays.append(trio.current_time() - sent_at[event.content])
                        assert event.id == len(delays)  # every message, in order

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    for n in range(MESSAGES):
                        content = f"{n:06d} " + "x" * (CONTENT_BYTES - 7)
                        sent_at[content] = trio.current_time()
                        await sender.send(content)
                elapsed = trio.current_time() - min(sent_at.values())
                # The stalled client was cut off by its queue bound, long before its send
                # deadline: the server took all of this in far less than SEND_TIMEOUT_S.
                assert elapsed < SEND_TIMEOUT_S / 3
                lines = []
                while (line := await stalled.line()) is not None:
                    lines.append(line)
                assert lines[-1] == "ERR OVERFLOW you fell too far behind; closing"
                received = sum(1 for line in lines if line.startswith("MSG "))
                assert received < MESSAGES  # it fell behind and the backlog was dropped
                assert await sender.who() == ["fast", "sender"]
    assert len(delays) == MESSAGES
    worst = max(delays)
    print(f"fast client: {MESSAGES} messages, worst delay {worst * 1000:.1f} ms")
    assert worst < FAST_CLIENT_BOUND_S


async def test_requests_without_reading_replies_are_flow_controlled(config: Config) -> None:
    """A client that pipelines requests and never reads is simply not read any more: its
    queue stays near the reply threshold and the server does not disconnect it."""
    config = with_chat(config, outbox_reply_threshold_bytes=8 * 1024)
    with trio.fail_after(IO_TIMEOUT_S):
        async with chat_server(config) as server:
            code, _ = await server.create_room()
            stream = await stalled_client(server.chat_port)
            greedy = RawClient(stream)
            await greedy.send(f"HELLO greedy {code}\n".encode())
            request = b"WHO\n" * 1000
            with trio.move_on_after(0.5):
                await greedy.send(request * 50)  # 200 KB of requests; blocks when unread
            async with stream:
                async with server.client("ann", code) as ann:
                    assert await ann.who() == ["ann", "greedy"]  # still connected and served
                answered = 0
                while answered < 2000:  # once read again, its requests are all answered
                    line = await greedy.line()
                    assert line is not None
                    assert not line.startswith("ERR")
                    answered += line.startswith("USERS ")
