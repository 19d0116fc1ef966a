"""A room manager and a collab service in the test's own nursery, and helpers around them.

Only the two services the editor needs are started (not ``run_services``), so these tests
neither wait for nor depend on the other services. ``CollabServer.client`` runs a real
``CollabClient`` over loopback; ``RawCollab`` speaks the wire protocol byte by byte, for
what a well-behaved client would never send.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pycrdt
import trio

from syncrox.client.collab import CollabClient, tcp_connector
from syncrox.client.rooms import RoomsClient
from syncrox.config import CollabConfig, Config
from syncrox.protocol import collab as proto
from syncrox.protocol.collab_doc import TEXT_NAME, DocumentCore, template_update
from syncrox.services import collab
from syncrox.services.context import BoundPorts, ServiceContext
from tests.services.helpers import RawClient, running_service

HOST = "127.0.0.1"
MAX_FRAME_BYTES = 64 * 1024 * 1024


def with_collab(config: Config, **collab_overrides: object) -> Config:
    return dataclasses.replace(
        config,
        collab=dataclasses.replace(config.collab, **collab_overrides),  # type: ignore[arg-type]
    )


def with_rooms(config: Config, **rooms_overrides: object) -> Config:
    return dataclasses.replace(
        config,
        rooms=dataclasses.replace(config.rooms, **rooms_overrides),  # type: ignore[arg-type]
    )


@dataclass
class CollabServer:
    ports: BoundPorts
    ctx: ServiceContext

    @property
    def port(self) -> int:
        return self.ports["collab"]

    @property
    def limits(self) -> CollabConfig:
        return self.ctx.config.collab

    async def create_room(self, creator: str = "zed") -> tuple[str, str]:
        return await create_room(self.ports["rooms"], creator)

    async def join_room(self, code: str, user: str) -> str:
        async with RoomsClient.connect(HOST, self.ports["rooms"]) as client:
            return await client.join(code, user)

    @asynccontextmanager
    async def client(
        self, user: str, room: str, language: str = "python", **options: Any
    ) -> AsyncIterator[CollabClient]:
        async with running_client(self.port, user, room, language, **options) as client:
            yield client

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[RawCollab]:
        stream = await trio.open_tcp_stream(HOST, self.port)
        async with stream:
            yield RawCollab(stream)

    async def stored_text(self, room: str, language: str = "python") -> str:
        """The text the store holds (snapshot + log), independent of any live document."""
        stored = await self.ctx.store.collab.open_document(
            room, language, template_update(language), time.time()
        )
        return DocumentCore.restore(
            [stored.snapshot, *stored.updates],
            max_text_bytes=self.limits.max_document_bytes,
            max_state_bytes=self.limits.max_state_bytes,
        ).text


async def create_room(rooms_port: int, creator: str = "zed") -> tuple[str, str]:
    async with RoomsClient.connect(HOST, rooms_port) as client:
        return await client.create(creator)


@asynccontextmanager
async def running_client(
    port: int, user: str, room: str, language: str = "python", **options: Any
) -> AsyncIterator[CollabClient]:
    """A ``CollabClient`` connected, admitted, opened and synced; stopped on exit."""
    client = CollabClient(
        tcp_connector(HOST, port), language=language, room=room, user=user, **options
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        yield client
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def collab_server(config: Config) -> AsyncIterator[CollabServer]:
    async with running_service(config, collab.serve) as (ports, ctx):
        yield CollabServer(ports, ctx)


async def wait_until(client: CollabClient, predicate: Callable[[CollabClient], bool]) -> None:
    """Wait until ``predicate(client)`` holds (the caller bounds the wait)."""
    version = client.version
    while not predicate(client):
        version = await client.wait_changed(version)


async def wait_for_text(client: CollabClient, text: str) -> None:
    await wait_until(client, lambda c: c.text == text)


async def edit(client: CollabClient, change: Callable[[str], str]) -> str:
    """Apply ``change`` to what the client shows, wait until it is stored; return the text."""
    client.edit(change(client.view()))
    await client.flush()
    return client.text


async def assert_edits_travel(server: CollabServer, room: str, language: str = "python") -> str:
    """Two fresh clients: an edit of one reaches the other (the service still works)."""
    async with (
        server.client("probe1", room, language) as one,
        server.client("probe2", room, language) as two,
    ):
        assert one.text == two.text
        marker = f"probe {time.monotonic_ns()}\n"
        after = await edit(one, lambda text: marker + text)
        await wait_for_text(two, after)
        assert after.startswith(marker)
        return after


# ---------------------------------------------------------------------------------------
# Raw y-protocols frames


class Writer:
    """A pycrdt replica of the document that records the update of each of its edits."""

    def __init__(self, client_id: int) -> None:
        self.doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc(client_id=client_id)
        self.text = self.doc.get(TEXT_NAME, type=pycrdt.Text)
        self.updates: list[bytes] = []
        self.doc.observe(lambda event: self.updates.append(event.update))

    def apply(self, update: bytes) -> None:
        self.doc.apply_update(update)

    def insert(self, index: int, value: str) -> bytes:
        self.text.insert(index, value)
        return self.updates[-1]


def update_message(update: bytes) -> bytes:
    return proto.encode_update(update)


def awareness_message(client_id: int, clock: int, state: str) -> bytes:
    entry = proto.AwarenessEntry(client_id, clock, state)
    return proto.encode_message(proto.AwarenessUpdate((entry,)))


Received = str | list[proto.YMessage]


class RawCollab(RawClient):
    """A collab connection driven by hand: lines and ``YMSG`` frames as they arrive."""

    def __init__(self, stream: trio.SocketStream) -> None:
        super().__init__(stream)
        self.received: list[Received] = []  # everything, in order

    async def enter(self, user: str, room: str, language: str = "python") -> None:
        assert await self.ask(f"HELLO {user} {room}") == f"OK HELLO {room} {user}"
        opened = await self.ask(f"OPEN {language}")
        assert opened.startswith(f"OPENED {language} ")

    async def ask(self, line: str) -> str:
        """Send ``line``; return the next line (skipping frames)."""
        await self.send(line.encode() + b"\n")
        return await self.next_line()

    async def send_frame(self, *messages: bytes) -> None:
        await self.send(proto.encode_frame(list(messages)))

    async def receive(self) -> Received | None:
        """The next line, or the decoded messages of the next frame; ``None`` at EOF."""
        line = await self.line()
        if line is None:
            return None
        received: Received = line
        if line.startswith("YMSG "):
            header = proto.parse_server_line(line, max_frame_bytes=MAX_FRAME_BYTES)
            assert isinstance(header, proto.FrameHeader)
            body = await self.conn.receive_body(header.size)
            received = proto.decode_frame(body, max_messages=1 << 20)
        self.received.append(received)
        return received

    async def next_line(self) -> str:
        """The next line, skipping frames."""
        while True:
            received = await self.receive()
            assert received is not None, "the server closed the connection"
            if isinstance(received, str):
                return received

    async def next_frame(self) -> list[proto.YMessage]:
        """The next frame, skipping lines."""
        while True:
            received = await self.receive()
            assert received is not None, "the server closed the connection"
            if isinstance(received, list):
                return received

    async def document(self) -> bytes:
        """The whole document as the server holds it (sync step 1 from nothing)."""
        await self.send_frame(proto.encode_message(proto.SyncStep1(b"\x00")))
        while True:
            for message in await self.next_frame():
                if isinstance(message, proto.SyncStep2):
                    return message.update

    async def text(self) -> str:
        doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
        doc.apply_update(await self.document())
        return str(doc.get(TEXT_NAME, type=pycrdt.Text))

    async def awareness(self) -> dict[int, dict[str, Any]]:
        """Every awareness state the server holds for this document.

        A sync step 1 and an awareness query in one frame are answered in one go, step 2
        first: the frame right after the step 2 is the query's answer, not some relay."""
        step1 = proto.encode_message(proto.SyncStep1(b"\x00"))
        await self.send_frame(step1, proto.encode_message(proto.QueryAwareness()))
        while not any(isinstance(m, proto.SyncStep2) for m in await self.next_frame()):
            pass
        [answer] = await self.next_frame()
        assert isinstance(answer, proto.AwarenessUpdate)
        return {entry.client_id: json.loads(entry.state) for entry in answer.entries}
