"""A live document's inbox, on its own: bounded in bytes as in frames, and a document
whose task has ended fails new frames at once instead of taking them in forever."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from syncrox.config import CollabConfig, RoomsConfig
from syncrox.errors import INTERNAL, LocalProtocolError
from syncrox.protocol.collab import QueryAwareness
from syncrox.services.collab_docs import DocumentHub, Inbound, LiveDocument, Subscriber
from syncrox.services.collab_outbox import Outbox
from syncrox.services.registry import RoomRegistry
from syncrox.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path, sqlite_worker_thread=False) as opened:
        yield opened


@asynccontextmanager
async def live_document(store: Store, config: CollabConfig) -> AsyncIterator[LiveDocument]:
    member, _ = await RoomRegistry(store.rooms, RoomsConfig()).create("ann", "192.0.2.1")
    async with trio.open_nursery() as nursery:
        hub = DocumentHub(store.collab, config, nursery)
        doc = await hub.acquire(member.code, "python")
        yield doc
        nursery.cancel_scope.cancel()


def frame(size: int, number: int = 1) -> Inbound:
    outbox = Outbox(max_bytes=1 << 20)
    return Inbound(Subscriber(1, "ann", "test", outbox), number, [QueryAwareness()], size)


async def test_a_finished_document_refuses_frames_at_once(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    config = CollabConfig(unload_grace_s=1.0)
    async with live_document(store, config) as doc:
        doc.hub.release(doc)  # nobody uses it: it unloads after the grace
        with trio.fail_after(30):
            await trio.sleep(config.unload_grace_s + 1)
            assert doc.dead
            with pytest.raises(LocalProtocolError) as dead:
                await doc.submit(frame(10))
        assert dead.value.code == INTERNAL and dead.value.fatal


async def test_the_inbox_is_bounded_in_bytes_too(autojump_clock: trio.testing.MockClock) -> None:
    # 256 frames of 2 MiB would be 512 MiB waiting for one document.
    config = CollabConfig(inbox_bytes=1000)
    async with trio.open_nursery() as nursery:
        hub = DocumentHub(None, config, nursery)  # type: ignore[arg-type]
        doc = LiveDocument(hub, "4821", "python")  # its task is not running
        with trio.fail_after(30):
            await doc.submit(frame(5000))  # alone, a frame always fits
            with trio.move_on_after(1) as waited:
                await doc.submit(frame(1, 2))
            assert waited.cancelled_caught  # it waited for room, then gave up
            taken = doc._drain(await doc._receive.receive())  # the task takes the batch
            assert [inbound.frame for inbound in taken] == [1]
            await doc.submit(frame(600, 3))  # room again, and nothing counted twice
            with trio.move_on_after(1) as waited:
                await doc.submit(frame(600, 4))
            assert waited.cancelled_caught
