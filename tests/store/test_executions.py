"""The per-room execution history in SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from syncrox.errors import StoreError
from syncrox.store import Store
from syncrox.store.executions import NewExecution
from syncrox.store.rooms import MemberRecord


def run(room: str, user: str = "alice", stdout: bytes = b"hi\n") -> NewExecution:
    return NewExecution(
        room=room, user=user, language="python", created_at=1_700_000_000.5, verdict="OK",
        exit_code=0, compile_ms=None, run_ms=42, truncated=("stdout",), code=b"print('hi')",
        stdin_bytes=7, diag=b"", stdout=stdout, stderr=b"warn",
    )  # fmt: skip


async def make_room(store: Store, code: str) -> None:
    creator = MemberRecord("h" + code, code, "alice", "alice", 1.0, 1.0)
    assert await store.rooms.insert_room(code, creator)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "data", sqlite_worker_thread=False)
    yield opened  # type: ignore[misc]
    opened.close()


async def test_record_recent_and_get(store: Store) -> None:
    with trio.fail_after(5):
        await make_room(store, "1234")
        first = await store.executions.record(run("1234"), keep=10)
        second = await store.executions.record(run("1234", "bob", b"yo\n"), keep=10)
        assert second > first
        recent = await store.executions.recent("1234", 10)
        assert [r.run_id for r in recent] == [second, first]
        assert recent[0].user == "bob" and recent[0].stdout_bytes == 3
        assert recent[1].truncated == ("stdout",) and recent[1].compile_ms is None
        found = await store.executions.get("1234", first)
        assert found is not None
        assert (found.code, found.stdout, found.stderr) == (b"print('hi')", b"hi\n", b"warn")


async def test_rooms_never_see_each_others_runs(store: Store) -> None:
    with trio.fail_after(5):
        await make_room(store, "1111")
        await make_room(store, "2222")
        mine = await store.executions.record(run("1111"), keep=10)
        assert await store.executions.recent("2222", 10) == []
        assert await store.executions.get("2222", mine) is None


async def test_each_room_keeps_its_newest_runs_and_ids_are_not_reused(store: Store) -> None:
    with trio.fail_after(5):
        await make_room(store, "1234")
        ids = [await store.executions.record(run("1234"), keep=3) for _ in range(5)]
        assert [r.run_id for r in await store.executions.recent("1234", 10)] == ids[:1:-1]
        assert await store.executions.get("1234", ids[0]) is None


async def test_a_deleted_room_takes_its_history_along(store: Store) -> None:
    with trio.fail_after(5):
        await make_room(store, "1234")
        await store.executions.record(run("1234"), keep=10)
        await store.db.run(lambda c: c.execute("DELETE FROM rooms WHERE code = '1234'"))
        await make_room(store, "1234")
        assert await store.executions.recent("1234", 10) == []


async def test_a_run_needs_an_existing_room(store: Store) -> None:
    with trio.fail_after(5), pytest.raises(StoreError) as caught:
        await store.executions.record(run("9999"), keep=10)
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
