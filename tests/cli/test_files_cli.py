"""The file-transfer CLI in-process: what ``--metrics-out`` writes."""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

import trio

from syncrox.cli import files as cli_files
from syncrox.client.files import FilesClient, TransferOptions, upload
from syncrox.client.rooms import RoomsClient
from syncrox.services.context import BoundPorts
from tests.conftest import IO_TIMEOUT_S

HOST = "127.0.0.1"


async def test_metrics_out_timestamps_are_unix_epoch_seconds(
    services: BoundPorts, tmp_path: Path
) -> None:
    source = tmp_path / "notes.bin"
    source.write_bytes(random.Random(2).randbytes(200_000))
    with trio.fail_after(IO_TIMEOUT_S):
        async with RoomsClient.connect(HOST, services["rooms"]) as rooms:
            code, token = await rooms.create("alice")
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            before = time.time()
            result = await upload(files, HOST, source, TransferOptions())
            after = time.time()
            assert result.ok, result.failure
            out = tmp_path / "client.csv"
            # Event times are Trio's clock, whose origin is random (not time.monotonic()'s):
            # they must be converted with the offset of that clock, as the server does.
            cli_files._write_metrics(out, result, files.room)
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert rows and {row["event"] for row in rows} >= {"START", "ACK", "COMPLETE"}
    stamps = [float(row["ts"]) for row in rows]
    assert all(before - 1.0 <= ts <= after + 1.0 for ts in stamps), (before, stamps[:3], after)
    assert stamps == sorted(stamps)
    assert {row["room"] for row in rows} == {code}
