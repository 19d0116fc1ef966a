from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
import trio.testing

from syncrox.errors import StoreError
from syncrox.store import Store
from syncrox.store.sqlite import Database, Schema, transaction

V1 = Schema("widgets", ("CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT);",))
V2 = Schema(
    "widgets",
    (*V1.steps, "ALTER TABLE widgets ADD COLUMN colour TEXT; CREATE INDEX w ON widgets (name);"),
)


def test_migrations_apply_once_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    Database.open(path, [V1]).close()
    db = Database.open(path, [V2])
    version = db.call(
        lambda c: c.execute(
            "SELECT version FROM schema_versions WHERE component='widgets'"
        ).fetchone()
    )
    assert version == (2,)
    db.call(lambda c: c.execute("INSERT INTO widgets (name, colour) VALUES ('a', 'red')"))
    db.close()
    Database.open(path, [V2]).close()  # re-opening applies nothing new


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    Database.open(path, [V2]).close()
    with pytest.raises(StoreError, match="newer"):
        Database.open(path, [V1])


def test_failed_migration_leaves_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    Database.open(path, [V1]).close()
    broken = Schema("widgets", (*V1.steps, "ALTER TABLE widgets ADD COLUMN x TEXT; NOT SQL;"))
    with pytest.raises(StoreError):
        Database.open(path, [broken])
    db = Database.open(path, [V1])
    columns = db.call(lambda c: [row[1] for row in c.execute("PRAGMA table_info(widgets)")])
    assert columns == ["id", "name"]


def test_corrupt_database_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        Database.open(path, [V1])
    assert path.read_bytes().startswith(b"this is not a database")


def test_a_database_with_a_damaged_page_is_refused_and_left_alone(tmp_path: Path) -> None:
    # SQLite opens such a file without complaint and reports the damage only as rows of
    # PRAGMA quick_check; serving it would hand out wrong answers.
    schema = Schema("names", ("CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT);"
                              "CREATE INDEX names_by_name ON names (name);",))  # fmt: skip
    path = tmp_path / "db.sqlite"
    db = Database.open(path, [schema])
    db.call(lambda c: c.executemany("INSERT INTO names (name) VALUES (?)",
                                    [(f"n{i:06d}",) for i in range(20_000)]))  # fmt: skip
    db.call(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    page_size = db.call(lambda c: c.execute("PRAGMA page_size").fetchone()[0])
    root = db.call(
        lambda c: c.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'names_by_name'"
        ).fetchone()[0]
    )
    db.close()
    damaged = bytearray(path.read_bytes())
    leaf = (root + 5 - 1) * page_size  # a leaf page of the index, past its root
    damaged[leaf + 1000 : leaf + 3000] = b"\x07" * 2000
    path.write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match="is damaged"):
        Database.open(path, [schema])
    assert path.read_bytes() == bytes(damaged)


def test_wal_and_foreign_keys_are_on(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "db.sqlite", [V1])
    assert db.call(lambda c: c.execute("PRAGMA journal_mode").fetchone()) == ("wal",)
    assert db.call(lambda c: c.execute("PRAGMA foreign_keys").fetchone()) == (1,)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "db.sqlite", [V1])

    def half_done(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            conn.execute("INSERT INTO widgets (name) VALUES ('kept?')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.call(half_done)
    assert db.call(lambda c: c.execute("SELECT count(*) FROM widgets").fetchone()) == (0,)


async def test_run_executes_in_a_worker_thread(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "db.sqlite", [V1])
    with trio.fail_after(10):
        await db.run(lambda c: c.execute("INSERT INTO widgets (name) VALUES ('x')"))
        count = await db.run(lambda c: c.execute("SELECT count(*) FROM widgets").fetchone())
    assert count == (1,)


def test_a_data_directory_serves_one_server_at_a_time(tmp_path: Path) -> None:
    with Store.open(tmp_path), pytest.raises(StoreError, match="in use"):
        Store.open(tmp_path)
    Store.open(tmp_path).close()  # released on close


async def test_inline_mode_keeps_virtual_time_still(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """With a worker thread, autojump would leap to the sleeper's deadline during the call."""
    db = Database.open(tmp_path / "db.sqlite", [V1], worker_thread=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 1000)
        before = trio.current_time()
        with trio.fail_after(10):
            for _ in range(20):
                await db.run(lambda c: c.execute("INSERT INTO widgets (name) VALUES ('x')"))
        assert trio.current_time() == before
        nursery.cancel_scope.cancel()
