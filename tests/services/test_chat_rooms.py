"""The chat sequencer against a real SQLite store: a batch of posts is stored in one
transaction and reaches each member of a room as one write, in id order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from syncrox.services.chat_rooms import ChatRoom, ChatRooms, Subscriber
from syncrox.store import Store
from syncrox.store.chat import Draft
from syncrox.store.rooms import MemberRecord


class RecordingOutbox:
    """Stands in for a connection's outbox: records what each broadcast handed it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def broadcast(self, data: bytes) -> bool:
        self.writes.append(data)
        return True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path) as opened:
        yield opened


async def open_room(store: Store, rooms: ChatRooms, code: str) -> tuple[ChatRoom, RecordingOutbox]:
    creator = MemberRecord("h" * 64 + code, code, "zed", "zed", 0.0, 0.0)
    assert await store.rooms.insert_room(code, creator)
    room = await rooms.open(code)
    outbox = RecordingOutbox()
    room.add(Subscriber("zed", "zed", None, outbox))  # type: ignore[arg-type]
    return room, outbox


async def test_a_batch_reaches_each_member_as_one_write_in_id_order(store: Store) -> None:
    rooms = ChatRooms(store.chat)
    first, first_box = await open_room(store, rooms, "1111")
    second, second_box = await open_room(store, rooms, "2222")
    posts = [(first, "a"), (second, "b"), (first, "c"), (first, "d")]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as posting:
                # Every post is queued before the sequencer starts: they form one batch.
                for room, text in posts:
                    posting.start_soon(rooms.post, room, Draft(room.code, "zed", text))
                await trio.testing.wait_all_tasks_blocked()
                await nursery.start(rooms.run_sequencer)
            nursery.cancel_scope.cancel()  # every post was stored and published
    assert len(first_box.writes) == 1 and len(second_box.writes) == 1
    lines = first_box.writes[0].decode().splitlines()
    assert [line.split(" ", 2)[1] for line in lines] == ["1", "2", "3"]  # ids, in order
    # (Trio starts tasks in no fixed order, so the posts queued in some order of a, c, d.)
    assert sorted(line.rsplit(" ", 1)[1] for line in lines) == ["a", "c", "d"]
    assert second_box.writes[0].decode().rstrip("\n").endswith(" b")
    assert first.last_id == 3 and second.last_id == 1
