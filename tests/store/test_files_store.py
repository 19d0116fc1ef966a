"""The file store's event reports against a real SQLite database, across its upgrade."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import syncrox.store
from syncrox.store import Store
from syncrox.store.files import EventRow, TransferRecord
from syncrox.store.rooms import MemberRecord

TRANSFER = TransferRecord(
    "ab" * 16, "4821", "a.bin", "upload", "alice", "reno", "json", 10, "0" * 64, 1.0, None, "open"
)
ROW = EventRow(1.5, "ACK", 1, 10, 1.0, 1.0, 0.5, 200.0, 2.0, 64.0, 0, 511)


async def test_a_transfer_made_before_event_reports_takes_exactly_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database from before event reports (the files schema at its first step) keeps its
    # transfers through the upgrade; each can then take one report, and only one.
    before = tuple(
        dataclasses.replace(schema, steps=schema.steps[:1]) if schema.component == "files"
        else schema
        for schema in syncrox.store.SCHEMAS
    )  # fmt: skip
    with monkeypatch.context() as old_code:
        old_code.setattr(syncrox.store, "SCHEMAS", before)
        with Store.open(tmp_path, sqlite_worker_thread=False) as store:
            creator = MemberRecord("h" * 64, "4821", "alice", "alice", 0.0, 0.0)
            assert await store.rooms.insert_room("4821", creator)
            await store.files.start_transfer(TRANSFER)
    with Store.open(tmp_path, sqlite_worker_thread=False) as store:
        assert await store.files.get_transfer(TRANSFER.id) == TRANSFER
        assert await store.files.claim_report(TRANSFER.id, 2.0)
        assert not await store.files.claim_report(TRANSFER.id, 3.0)
        assert not await store.files.claim_report("cd" * 16, 3.0)  # no such transfer
        await store.files.add_events(TRANSFER.id, 0, [ROW])
        assert await store.files.events(TRANSFER.id) == [ROW]
