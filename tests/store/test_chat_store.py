"""The chat repository against a real SQLite store and blob directory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from syncrox.errors import StoreError
from syncrox.protocol.chat import ChatMessage, ImageMessage, ImageMeta
from syncrox.store import Store
from syncrox.store.chat import CDN_DIR, Draft
from syncrox.store.rooms import MemberRecord

NOW_MS = 1_767_607_200_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path) as opened:
        yield opened


async def make_room(store: Store, code: str) -> None:
    creator = MemberRecord("h" * 64 + code, code, "zed", "zed", 0.0, 0.0)
    assert await store.rooms.insert_room(code, creator)


async def test_ids_increase_per_room_and_timestamps_never_go_back(store: Store) -> None:
    await make_room(store, "1111")
    await make_room(store, "2222")
    first = await store.chat.append(
        [Draft("1111", "alice", "a"), Draft("2222", "bob", "b"), Draft("1111", "alice", "c")],
        NOW_MS,
    )
    assert [(e.id, e.ts_ms) for e in first if isinstance(e, ChatMessage)] == [
        (1, NOW_MS),
        (1, NOW_MS),
        (2, NOW_MS),
    ]
    # The wall clock stepped back a minute: the stored time stays in order.
    [later] = await store.chat.append([Draft("1111", "alice", "d")], NOW_MS - 60_000)
    assert isinstance(later, ChatMessage)
    assert (later.id, later.ts_ms) == (3, NOW_MS)
    assert await store.chat.last_id("1111") == 3
    assert await store.chat.last_id("2222") == 1
    assert await store.chat.last_id("3333") == 0


async def test_a_draft_for_a_vanished_room_fails_alone(store: Store) -> None:
    await make_room(store, "1111")
    results = await store.chat.append(
        [Draft("1111", "a", "x"), Draft("9999", "a", "y"), Draft("1111", "a", "z")], NOW_MS
    )
    assert isinstance(results[1], StoreError)
    assert [r.id for r in results if isinstance(r, ChatMessage)] == [1, 2]


async def test_history_windows(store: Store) -> None:
    await make_room(store, "1111")
    await store.chat.append([Draft("1111", "a", str(n)) for n in range(1, 11)], NOW_MS)
    page = await store.chat.history("1111", after=3, upto=8, limit=3)
    assert [e.id for e in page] == [4, 5, 6]
    assert [e.id for e in await store.chat.history("1111", after=6, upto=8, limit=9)] == [7, 8]
    assert await store.chat.newest_after("1111", upto=8, limit=3) == 5
    assert await store.chat.newest_after("1111", upto=8, limit=50) == 0
    assert await store.chat.has_messages("1111", after=0, upto=1)
    assert not await store.chat.has_messages("1111", after=10, upto=20)


async def test_images_are_content_addressed_in_cdn_and_found_by_id_or_name(
    store: Store, tmp_path: Path
) -> None:
    await make_room(store, "1111")
    await make_room(store, "2222")
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(100_000)
    upload = store.chat.new_upload()
    await upload.write(data[:50_000])
    await upload.write(data[50_000:])
    digest = await upload.commit()
    assert (tmp_path / CDN_DIR / digest[:2] / digest[2:4] / digest).read_bytes() == data
    meta = ImageMeta(len(data), "image/png", digest, "cat.png")
    [first, second] = await store.chat.append(
        [Draft("1111", "a", image=meta), Draft("1111", "b", image=meta)], NOW_MS
    )
    assert isinstance(second, ImageMessage)
    assert await store.chat.find_image("1111", image_id=1) == first
    assert await store.chat.find_image("1111", name="cat.png") == second  # the newest
    assert await store.chat.find_image("2222", name="cat.png") is None  # other room
    assert await store.chat.find_image("2222", image_id=1) is None
    chunks = [chunk async for chunk in store.chat.read_image(digest)]
    assert b"".join(chunks) == data
    assert all(len(chunk) % 3 == 0 for chunk in chunks[:-1])


async def test_an_aborted_upload_leaves_nothing(store: Store, tmp_path: Path) -> None:
    upload = store.chat.new_upload()
    await upload.write(b"partial")
    upload.abort()
    assert not any((tmp_path / CDN_DIR).glob("??/??/*"))
    assert not any((tmp_path / CDN_DIR / "tmp").iterdir())


async def test_an_expired_room_takes_its_chat_and_later_its_blobs(
    store: Store, tmp_path: Path
) -> None:
    await make_room(store, "1111")
    upload = store.chat.new_upload()
    await upload.write(b"GIF89a-old")
    digest = await upload.commit()
    meta = ImageMeta(10, "image/gif", digest, "old.gif")
    await store.chat.append([Draft("1111", "a", "hello"), Draft("1111", "a", image=meta)], NOW_MS)
    _, dropped = await store.rooms.expire(
        member_idle_before=1.0, room_idle_before=time.time() + 1, held_tokens=(), busy_rooms=()
    )
    assert dropped == ["1111"]
    await make_room(store, "1111")  # the code comes back for a new room
    assert await store.chat.last_id("1111") == 0
    assert await store.chat.history("1111", after=0, upto=99, limit=10) == []
    assert await store.chat.sweep_orphan_images(older_than_s=3600) == 0  # too young
    assert await store.chat.sweep_orphan_images(older_than_s=0) == 1
    assert not (tmp_path / CDN_DIR / digest[:2] / digest[2:4] / digest).exists()


async def test_store_runs_inline_for_virtual_time(tmp_path: Path) -> None:
    with Store.open(tmp_path, sqlite_worker_thread=False) as inline:
        await make_room(inline, "1111")
        upload = inline.chat.new_upload()
        await upload.write(b"GIF89a")
        digest = await upload.commit()
        with trio.fail_after(1):
            assert b"".join([c async for c in inline.chat.read_image(digest)]) == b"GIF89a"
