"""The collab repository against a real SQLite store: log, snapshot, compaction, cascade."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncrox.errors import StoreError
from syncrox.store import Store
from syncrox.store.rooms import MemberRecord


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path) as opened:
        yield opened


async def make_room(store: Store, code: str) -> None:
    creator = MemberRecord("h" * 64 + code, code, "zed", "zed", 0.0, 0.0)
    assert await store.rooms.insert_room(code, creator)


async def test_first_open_creates_from_the_template_once(store: Store) -> None:
    await make_room(store, "1234")
    first = await store.collab.open_document("1234", "python", b"template", 1.0)
    assert first.created and first.snapshot == b"template" and first.updates == []
    second = await store.collab.open_document("1234", "python", b"other template", 2.0)
    assert not second.created and second.snapshot == b"template"


async def test_appended_updates_come_back_in_order_and_survive_reopening(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        await make_room(store, "1234")
        await store.collab.open_document("1234", "c", b"t", 1.0)
        assert await store.collab.append("1234", "c", [b"u1", b"u2"], 2.0) == 2
        assert await store.collab.append("1234", "c", [b"u3"], 3.0) == 3
    with Store.open(tmp_path) as store:
        loaded = await store.collab.open_document("1234", "c", b"t", 4.0)
        assert loaded.updates == [b"u1", b"u2", b"u3"]
        assert loaded.last_seq == 3 and loaded.log_bytes == 6


async def test_compaction_replaces_the_snapshot_and_drops_folded_entries(store: Store) -> None:
    await make_room(store, "1234")
    await store.collab.open_document("1234", "java", b"t", 1.0)
    await store.collab.append("1234", "java", [b"a", b"b"], 2.0)
    await store.collab.compact("1234", "java", b"t+a+b", 2)
    await store.collab.append("1234", "java", [b"c"], 3.0)
    loaded = await store.collab.open_document("1234", "java", b"t", 4.0)
    assert (loaded.snapshot, loaded.updates, loaded.last_seq) == (b"t+a+b", [b"c"], 3)


async def test_documents_are_per_room_and_language(store: Store) -> None:
    await make_room(store, "1234")
    await make_room(store, "5678")
    for room, lang in (("1234", "python"), ("1234", "cpp"), ("5678", "python")):
        await store.collab.open_document(room, lang, b"t", 1.0)
    await store.collab.append("1234", "python", [b"mine"], 2.0)
    assert (await store.collab.open_document("1234", "cpp", b"t", 3.0)).updates == []
    assert (await store.collab.open_document("5678", "python", b"t", 3.0)).updates == []


async def test_a_room_that_expires_takes_its_documents_along(store: Store) -> None:
    await make_room(store, "1234")
    await store.collab.open_document("1234", "python", b"old", 1.0)
    await store.collab.append("1234", "python", [b"secret"], 2.0)
    await store.rooms.expire(
        member_idle_before=10.0, room_idle_before=10.0, held_tokens=(), busy_rooms=()
    )
    await make_room(store, "1234")  # the code is reused by a new room
    fresh = await store.collab.open_document("1234", "python", b"new", 20.0)
    assert fresh.created and fresh.snapshot == b"new" and fresh.updates == []


async def test_a_missing_room_or_document_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.collab.open_document("4321", "python", b"t", 1.0)
    with pytest.raises(StoreError):
        await store.collab.append("4321", "python", [b"x"], 1.0)
