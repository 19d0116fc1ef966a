"""The per-room execution history in SQLite."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
import trio

from syncrox.errors import StoreError
from syncrox.store import SCHEMAS, Store, executions
from syncrox.store.executions import NewExecution
from syncrox.store.rooms import MemberRecord
from syncrox.store.sqlite import Database, Schema


def run(room: str, user: str = "alice", stdout: bytes = b"hi\n") -> NewExecution:
    return NewExecution(
        room=room, user=user, language="python", created_at=1_700_000_000.5, verdict="OK",
        exit_code=0, compile_ms=None, run_ms=42, truncated=("stdout",), code=b"print('hi')",
        stdin=b"input\n", stdin_bytes=6, diag=b"", stdout=stdout, stderr=b"warn",
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
        assert recent[1].stdin_bytes == 6
        found = await store.executions.get("1234", first)
        assert found is not None
        assert (found.code, found.stdout, found.stderr) == (b"print('hi')", b"hi\n", b"warn")
        assert found.stdin == b"input\n" and found.summary.stdin_bytes == 6


async def test_the_stdin_is_kept_as_given_and_sized_as_kept(store: Store) -> None:
    with trio.fail_after(5):
        await make_room(store, "1234")
        cut = dataclasses.replace(
            run("1234"), stdin=b"\x00\xffab", stdin_bytes=1 << 20, truncated=("stdin",)
        )
        empty = dataclasses.replace(run("1234"), stdin=b"", stdin_bytes=0, truncated=())
        cut_id = await store.executions.record(cut, keep=10)
        empty_id = await store.executions.record(empty, keep=10)
        newest, oldest = await store.executions.recent("1234", 10)
        assert (oldest.stdin_bytes, oldest.truncated) == (4, ("stdin",))
        assert (newest.stdin_bytes, newest.truncated) == (0, ())
        found_cut = await store.executions.get("1234", cut_id)
        found_empty = await store.executions.get("1234", empty_id)
        assert found_cut is not None and found_cut.stdin == b"\x00\xffab"
        assert found_empty is not None and found_empty.stdin == b""


def make_version_1_database(path: Path) -> None:
    """A database as SyncroX wrote it before the history kept stdin (executions schema at
    version 1), with a room and two runs, one of which had a stdin."""
    old = Schema(executions.SCHEMA.component, executions.SCHEMA.steps[:1])
    schemas = [old if schema.component == old.component else schema for schema in SCHEMAS]
    database = Database.open(path, schemas, worker_thread=False)
    try:
        database.call(_insert_version_1_rows)
    finally:
        database.close()


def _insert_version_1_rows(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO rooms (code, created_by, created_at, last_active)"
        " VALUES ('1234', 'alice', 1.0, 1.0)"
    )
    for truncated, stdin_bytes in (("stdout", 0), ("", 12)):
        conn.execute(
            "INSERT INTO executions (room, user, language, created_at, verdict, exit_code,"
            " compile_ms, run_ms, truncated, code, stdin_bytes, diag, stdout, stderr)"
            " VALUES ('1234', 'alice', 'python', 1700000000.5, 'OK', 0, NULL, 42, ?,"
            " CAST('print(1)' AS BLOB), ?, x'', CAST('1' || char(10) AS BLOB), x'')",
            (truncated, stdin_bytes),
        )


async def test_a_database_from_before_stdin_was_kept_opens_with_its_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_version_1_database(data / "syncrox.db")
    with Store.open(data, sqlite_worker_thread=False) as store, trio.fail_after(5):
        query = "SELECT version FROM schema_versions WHERE component = 'executions'"
        (version,) = store.db.call(lambda c: c.execute(query).fetchone())
        assert version == len(executions.SCHEMA.steps) == 2
        with_stdin, without = await store.executions.recent("1234", 10)
        # Nothing of an old run's stdin was kept: empty, and cut if it had one.
        assert (without.stdin_bytes, without.truncated) == (0, ("stdout",))
        assert (with_stdin.stdin_bytes, with_stdin.truncated) == (0, ("stdin",))
        found = await store.executions.get("1234", without.run_id)
        assert found is not None
        assert (found.code, found.stdout, found.stdin) == (b"print(1)", b"1\n", b"")
        # New runs go on after the old ones, stdin and all.
        new_id = await store.executions.record(run("1234"), keep=10)
        assert new_id > with_stdin.run_id
        found = await store.executions.get("1234", new_id)
        assert found is not None and found.stdin == b"input\n"


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
