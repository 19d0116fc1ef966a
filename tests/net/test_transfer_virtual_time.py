"""The Trio transfer engine (router, session tasks, timers as cancel scopes) over the
emulated network in virtual time: 1 MiB at 20 % loss with duplication and reordering
arrives SHA-256-identical, both directions, every algorithm and both codecs."""

from __future__ import annotations

import hashlib
import random

import pytest
import trio
import trio.testing

from syncrox.errors import StoreError
from syncrox.net.transfer import DatagramRouter, TransferSession
from syncrox.netem import EmulatedNetwork, NetemConfig
from syncrox.protocol.rudp.congestion import ALGORITHMS
from syncrox.protocol.rudp.connection import Connection, Direction, Limits, Offer, Role, State
from syncrox.protocol.rudp.packets import Codec

SESSION = "00112233445566778899aabbccddeeff"
VIRTUAL_BUDGET_S = 3600.0


class MemorySink:
    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256
        self.data = bytearray()
        self.stored = False

    def write(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.data += chunk

    async def finish(self) -> None:
        if hashlib.sha256(self.data).hexdigest() != self.sha256:
            raise StoreError("digest mismatch")
        self.stored = True


class NoSink:
    def write(self, chunks: list[bytes]) -> None:
        raise AssertionError("a sender receives no data")

    async def finish(self) -> None:
        raise AssertionError("a sender stores nothing")


async def transfer(
    data: bytes, direction: Direction, algo: str, codec: Codec, netem: NetemConfig
) -> tuple[Connection, Connection, MemorySink]:
    network = EmulatedNetwork(netem)
    client_end, server_end = network.endpoint("10.0.0.2"), network.endpoint("10.0.0.1")
    digest = hashlib.sha256(data).hexdigest()
    mss = 4096

    def source(seq: int) -> bytes:
        return data[(seq - 1) * mss : seq * mss]

    limits = Limits(max_retries=30, linger_s=5.0)
    upload = direction is Direction.UPLOAD
    client = Connection(
        role=Role.CLIENT, direction=direction, session_id=SESSION, room="4821",
        filename="big.bin", limits=limits, now=trio.current_time(),
        size=len(data) if upload else 0, sha256=digest if upload else "",
        source=source if upload else None, offer=Offer(codec, algo, mss),
    )  # fmt: skip
    server = Connection(
        role=Role.SERVER, direction=direction, session_id=SESSION, room="4821",
        filename="big.bin", limits=limits, now=trio.current_time(), size=len(data),
        sha256=digest, source=None if upload else source,
    )  # fmt: skip
    sink = MemorySink(digest)
    server_app = sink if upload else NoSink()
    client_app = NoSink() if upload else sink
    server_router, client_router = DatagramRouter(server_end), DatagramRouter(client_end)
    server_session = TransferSession(server, server_end, None, server_app)
    client_session = TransferSession(client, client_end, server_end.local_address, client_app)
    server_router.add(server_session)
    client_router.add(client_session)
    with trio.fail_after(VIRTUAL_BUDGET_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server_router.run)
            nursery.start_soon(client_router.run)
            nursery.start_soon(server_session.run)
            client.connect(trio.current_time())
            await client_session.flush(trio.current_time())
            async with trio.open_nursery() as sessions:
                sessions.start_soon(client_session.run)
            await server_session.settled.wait()
            nursery.cancel_scope.cancel()
    return client, server, sink


HOSTILE = NetemConfig(loss=0.2, duplicate=0.05, reorder=0.1, delay_ms=5, jitter_ms=2, seed=7)


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
async def test_one_mib_at_20_percent_loss_arrives_identical(
    direction: Direction, algo: str, autojump_clock: trio.testing.MockClock
) -> None:
    data = random.Random(5).randbytes(1 << 20)
    codec = Codec.BINARY if algo in ("reno", "cubic") else Codec.JSON
    client, server, sink = await transfer(data, direction, algo, codec, HOSTILE)
    assert client.state is State.CLOSED, client.failure
    assert server.state in (State.CLOSED, State.TIME_WAIT), server.failure
    assert sink.stored
    assert hashlib.sha256(sink.data).digest() == hashlib.sha256(data).digest()


async def test_empty_file_both_directions(autojump_clock: trio.testing.MockClock) -> None:
    for direction in Direction:
        client, _, sink = await transfer(b"", direction, "reno", Codec.JSON, HOSTILE)
        assert client.state is State.CLOSED and sink.stored and sink.data == b""
