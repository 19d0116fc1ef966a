"""The chat sequencer against a real SQLite store: a batch of posts is stored in one
transaction and reaches each member of a room as one write (or a few bounded pieces),
in id order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from syncrox.services.chat_rooms import ChatRoom, ChatRooms, Subscriber, join_in_pieces
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
    rooms = ChatRooms(store.chat, outbox_max_bytes=1 << 20)
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


async def test_a_batch_larger_than_a_members_limit_goes_out_in_pieces_below_it(
    store: Store,
) -> None:
    # 40 posts of ~1 KiB in one batch, members allowed 8 KiB queued: one joined write
    # would overflow (and disconnect) every member, even one that keeps up.
    rooms = ChatRooms(store.chat, outbox_max_bytes=8192)
    room, box = await open_room(store, rooms, "1111")
    texts = [f"{n:02d}" + "x" * 1000 for n in range(40)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as posting:
                for text in texts:
                    posting.start_soon(rooms.post, room, Draft(room.code, "zed", text))
                await trio.testing.wait_all_tasks_blocked()
                await nursery.start(rooms.run_sequencer)
            nursery.cancel_scope.cancel()
    assert len(box.writes) > 1
    assert all(len(piece) <= 8192 // 4 for piece in box.writes)
    lines = b"".join(box.writes).decode().splitlines()
    assert [int(line.split(" ", 2)[1]) for line in lines] == list(range(1, 41))


def test_join_in_pieces_keeps_order_and_bounds() -> None:
    lines = [b"a\n", b"bb\n", b"ccc\n", b"d" * 10 + b"\n", b"e\n"]
    pieces = join_in_pieces(lines, 7)
    assert b"".join(pieces) == b"".join(lines)
    assert pieces == [b"a\nbb\n", b"ccc\n", b"d" * 10 + b"\n", b"e\n"]
    assert join_in_pieces([], 7) == []
