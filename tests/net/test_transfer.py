"""The datagram router's edges: whose address a session answers, what a SYN for an unknown
session gets back, and that one session's failure never takes the router down."""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable

import pytest
import trio
import trio.testing

from syncrox.errors import StoreError
from syncrox.net.datagram import Address
from syncrox.net.transfer import DatagramRouter, TransferSession
from syncrox.netem import EmulatedNetwork, NetemConfig
from syncrox.protocol.rudp.codec import decode_datagram, encode_binary, encode_json
from syncrox.protocol.rudp.connection import Connection, Direction, Limits, Offer, Role, State
from syncrox.protocol.rudp.packets import Codec, Packet, PacketType
from tests.net.test_transfer_virtual_time import MemorySink, NoSink
from tests.protocol.rudp.harness import FakeNetwork, Pair

SESSION = "00112233445566778899aabbccddeeff"
OTHER_SESSION = "ffeeddccbbaa99887766554433221100"
SERVER: Address = ("10.0.0.1", 9011)
CLIENT: Address = ("10.0.0.2", 40000)
REBOUND: Address = ("10.0.0.2", 40001)  # the same client after its NAT mapping changed
ATTACKER: Address = ("10.0.0.66", 5555)
MSS = 1000
DATA = bytes(range(256)) * 20  # 5120 bytes: 6 chunks


class Wire:
    """A scripted transport: the test injects datagrams and reads what the router sent."""

    def __init__(self) -> None:
        self.local_address = SERVER
        self.sent: list[tuple[bytes, Address]] = []
        self._in, self._out = trio.open_memory_channel[tuple[bytes, Address]](100)

    async def receive_batch(self) -> list[tuple[bytes, Address]]:
        return [await self._out.receive()]

    async def send(self, data: bytes, address: Address) -> None:
        self.sent.append((data, address))

    def close(self) -> None:
        pass

    async def inject(self, data: bytes, source: Address) -> None:
        await self._in.send((data, source))
        await trio.testing.wait_all_tasks_blocked()

    def take(self) -> list[tuple[Packet, Address]]:
        sent, self.sent = self.sent, []
        return [(decode_datagram(data), address) for data, address in sent]


def connection(role: Role, session_id: str = SESSION, *, data: bytes = DATA) -> Connection:
    digest = hashlib.sha256(data).hexdigest()
    client = role is Role.CLIENT

    def source(seq: int) -> bytes:
        return data[(seq - 1) * MSS : seq * MSS]

    return Connection(
        role=role, direction=Direction.UPLOAD, session_id=session_id, room="4821",
        filename="big.bin", limits=Limits(max_retries=30, linger_s=5.0),
        now=trio.current_time(), size=len(data), sha256=digest,
        source=source if client else None, offer=Offer(Codec.JSON, "reno", MSS),
    )  # fmt: skip


async def test_only_a_datagram_the_core_accepts_moves_the_reply_address(
    mock_clock: trio.testing.MockClock,
) -> None:
    wire = Wire()
    server, client = connection(Role.SERVER), connection(Role.CLIENT)
    session = TransferSession(server, wire, None, MemorySink(server.sha256))
    router = DatagramRouter(wire)
    router.add(session)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(router.run)
        nursery.start_soon(session.run)
        client.connect(trio.current_time())
        [syn] = client.datagrams_to_send(trio.current_time())
        await wire.inject(syn, CLIENT)
        [(syn_ack, to)] = wire.take()
        assert to == CLIENT and syn_ack.type is PacketType.SYN_ACK
        client.receive(syn_ack, trio.current_time())
        for datagram in client.datagrams_to_send(trio.current_time()):  # ACK 0, DATA 1
            await wire.inject(datagram, CLIENT)
        assert server.state is State.ESTABLISHED and session.peer == CLIENT
        acks = wire.take()
        assert acks and {to for _, to in acks} == {CLIENT}

        # Whoever knows the session id can send these from anywhere; none of them is valid
        # for the session's state, so none may redirect its replies.
        forged = [
            encode_json(Packet(PacketType.DATA, SESSION, seq=2, payload=b"x" * 10)),
            encode_json(Packet(PacketType.DATA, SESSION, seq=99, payload=b"x" * MSS)),
            encode_binary(Packet(PacketType.ACK, SESSION, seq=1, ack=1, rwnd=9)),
            encode_binary(Packet(PacketType.FIN, SESSION, seq=7)),
            encode_json(Packet(PacketType.SYN_ACK, SESSION)),
            encode_json(Packet(PacketType.ACK, SESSION, seq=0)),  # a repeated handshake ACK
            syn,  # a replayed SYN: answered again, to the confirmed address
            b'{"type":"DATA","session_id":"' + SESSION.encode() + b'","seq":"x"}',
        ]
        for datagram in forged:
            await wire.inject(datagram, ATTACKER)
        assert session.peer == CLIENT
        assert {to for _, to in wire.take()} <= {CLIENT}
        assert server.state is State.ESTABLISHED

        # NAT rebinding: the client's next chunks come from another port. They are valid,
        # so the replies follow them.
        for packet, _ in acks:
            client.receive(packet, trio.current_time())
        chunks = client.datagrams_to_send(trio.current_time())
        assert chunks
        for datagram in chunks:
            await wire.inject(datagram, REBOUND)
        assert session.peer == REBOUND
        replies = wire.take()
        assert replies and {to for _, to in replies} == {REBOUND}
        nursery.cancel_scope.cancel()


async def test_a_syn_for_an_unknown_session_never_reflects_more_bytes_than_it_carried(
    mock_clock: trio.testing.MockClock,
) -> None:
    wire = Wire()
    router = DatagramRouter(wire)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(router.run)
        # The smallest SYN that decodes (62 bytes): an RST would be 149, a 2.4x reflection
        # towards whatever source address the spoofer wrote in.
        tiny = b'{"type":"SYN","session_id":"%s"}' % SESSION.encode()
        assert decode_datagram(tiny).type is PacketType.SYN
        await wire.inject(tiny, ATTACKER)
        assert wire.sent == []
        assert router.stats.unknown_session == 1 and router.stats.resets_sent == 0

        # A real client's SYN (room, file, offer) is larger than the RST: it learns at once
        # that its session is gone.
        client = connection(Role.CLIENT)
        client.connect(trio.current_time())
        [syn] = client.datagrams_to_send(trio.current_time())
        await wire.inject(syn, CLIENT)
        [(reset, to)] = wire.sent
        assert to == CLIENT and len(reset) <= len(syn)
        assert decode_datagram(reset) == Packet(PacketType.RST, SESSION, error="NO_SESSION")
        client.receive(decode_datagram(reset), trio.current_time())
        assert client.failure is not None and client.failure[0] == "NO_SESSION"

        # Anything else for an unknown session gets nothing at all.
        wire.sent.clear()
        await wire.inject(encode_json(Packet(PacketType.DATA, SESSION, seq=1)), ATTACKER)
        assert wire.sent == [] and router.stats.resets_sent == 1
        nursery.cancel_scope.cancel()


class CrashingSink(MemorySink):
    """A receiving app with a bug (not a ``SyncroxError``) in ``write`` or ``finish``."""

    def __init__(self, sha256: str, where: str) -> None:
        super().__init__(sha256)
        self.where = where

    def write(self, chunks: list[bytes]) -> None:
        if self.where == "write":
            raise RuntimeError("a bug in write")
        super().write(chunks)

    async def finish(self) -> None:
        if self.where == "finish":
            raise RuntimeError("a bug in finish")
        await super().finish()


class FailingDisk(MemorySink):
    def write(self, chunks: list[bytes]) -> None:
        raise StoreError("no space left on device")


async def upload_through(
    network: EmulatedNetwork, router: DatagramRouter, host: str, session_id: str,
    server_app: MemorySink, nursery: trio.Nursery,
) -> tuple[Connection, Connection]:  # fmt: skip
    server_end = router.transport
    server, client = connection(Role.SERVER, session_id), connection(Role.CLIENT, session_id)
    server_session = TransferSession(server, server_end, None, server_app)
    router.add(server_session)
    nursery.start_soon(server_session.run)
    client_end = network.endpoint(host)
    client_router = DatagramRouter(client_end, answer_unknown=False)
    client_session = TransferSession(client, client_end, server_end.local_address, NoSink())
    client_router.add(client_session)
    nursery.start_soon(client_router.run)
    nursery.start_soon(client_session.run)
    client.connect(trio.current_time())
    await client_session.flush(trio.current_time())
    await client_session.settled.wait()
    await server_session.settled.wait()
    return client, server


@pytest.mark.parametrize(
    ("app", "code"),
    [
        (lambda sha: CrashingSink(sha, "write"), "INTERNAL"),
        (lambda sha: CrashingSink(sha, "finish"), "INTERNAL"),
        (FailingDisk, "STORE"),
    ],
    ids=["bug-in-write", "bug-in-finish", "disk-error"],
)
async def test_one_sessions_failure_ends_that_session_only(
    app: Callable[[str], MemorySink], code: str, autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    network = EmulatedNetwork(NetemConfig(delay_ms=2, seed=1))
    router = DatagramRouter(network.endpoint(SERVER[0]))
    sha = hashlib.sha256(DATA).hexdigest()
    with trio.fail_after(600), caplog.at_level(logging.WARNING, logger="syncrox.files"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(router.run)
            broken = app(sha)
            client, server = await upload_through(
                network, router, "10.0.0.2", SESSION, broken, nursery
            )
            # The failing session ended with a reason its client heard ...
            assert server.failure is not None and server.failure[0] == code
            assert client.failure is not None and client.failure[0] == code
            assert not broken.stored
            # ... and the same router still serves the next transfer.
            sink = MemorySink(sha)
            client2, _ = await upload_through(
                network, router, "10.0.0.3", OTHER_SESSION, sink, nursery
            )
            assert client2.state is State.CLOSED and sink.stored and bytes(sink.data) == DATA
            nursery.cancel_scope.cancel()
    crashes = [r for r in caplog.records if r.getMessage().startswith("transfer.crash")]
    if code == "INTERNAL":  # a bug is logged with its traceback, never swallowed silently
        assert crashes and crashes[0].exc_info is not None
    else:  # an expected failure (a disk error) is a clear line, not a crash
        assert not crashes


class _ResetWhileStoring:
    """An upload's app whose peer resets the session while ``finish`` stores the file."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.stored = conn, False

    def write(self, chunks: list[bytes]) -> None:
        pass

    async def finish(self) -> None:
        await trio.lowlevel.checkpoint()
        reset = Packet(PacketType.RST, self.conn.session_id, error="ABORTED")
        self.conn.receive(reset, trio.current_time())
        self.stored = True


async def test_a_reset_while_the_file_is_stored_ends_the_session_quietly(
    mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    pair = Pair(DATA, Direction.UPLOAD, FakeNetwork(random.Random(1)), commit=False)
    pair.start()
    while pair.server.state is not State.FIN_RCVD and pair.step():
        pass
    assert pair.server.state is State.FIN_RCVD
    app = _ResetWhileStoring(pair.server)
    session = TransferSession(pair.server, Wire(), CLIENT, app)
    with trio.fail_after(5):
        await session.run()
    assert app.stored and pair.server.state is State.FAILED
    assert not [r for r in caplog.records if "crash" in r.getMessage()]
