"""EVENTS: an uploading client's congestion events reach the server, so METRICS has them."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from syncrox.client.files import FilesClient, TransferOptions, download, upload
from syncrox.config import Config
from syncrox.errors import RequestRefused
from syncrox.protocol.files_events import MAX_REPORT_LINE_BYTES
from syncrox.protocol.rudp.events import EventKind, TransferEvent
from syncrox.services import files
from syncrox.services.context import BoundPorts
from tests.conftest import IO_TIMEOUT_S
from tests.services.helpers import raw_client, running_service
from tests.services.test_files_service import HOST, make_file, new_room

LINE = b"0.5 ACK 1 4096 1.5 1.5 0.75 200 2 1048576 0 511\n"


@asynccontextmanager
async def member(
    ports: BoundPorts, code: str, user: str, token: str | None = None
) -> AsyncIterator[FilesClient]:
    """A File Control connection admitted to room ``code`` as ``user``."""
    async with FilesClient.connect(HOST, ports["files_tcp"]) as files:
        await files.hello(code, user, token)
        yield files


def an_event() -> TransferEvent:
    return TransferEvent(0.0, EventKind.ACK, 1, 4096, 1.0, 1.0, 0.5, 200.0, 2.0, 64.0, 0, 511)


async def test_an_upload_reports_its_events_and_every_member_can_measure_it(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        before = time.time()
        async with (
            member(services, code, "alice", token) as alice,
            member(services, code, "bob") as bob,
        ):
            sent = await upload(
                alice, HOST, make_file(tmp_path, "up.bin", 200_000), TransferOptions()
            )
            assert sent.ok, sent.failure
            assert sent.report_failure is None
            assert sent.events_reported == len(sent.events) > 0
            header, *rows = (await bob.metrics(sent.transfer_id, "csv")).decode().splitlines()
            assert header.startswith("ts,room,file,direction,seq,")
            assert len(rows) == sent.events_reported
            cells = [row.split(",") for row in rows]
            assert {c[3] for c in cells} == {"upload"} and {c[2] for c in cells} == {"up.bin"}
            events = [c[11] for c in cells]
            assert events[0] == "START" and events[-1] == "COMPLETE" and "ACK" in events
            # On the server's clock: after the ticket, not later than now.
            stamps = [float(c[0]) for c in cells]
            assert before - 1 <= stamps[0] <= stamps[-1] <= time.time() + 1
            assert stamps == sorted(stamps)
            qlog = json.loads(await bob.metrics(sent.transfer_id, "qlog"))
            [trace] = qlog["traces"]
            assert trace["vantage_point"] == {"type": "client"}
            assert len(trace["events"]) == len(rows)
            # Taken once: a second report (or anyone replaying one) changes nothing.
            with pytest.raises(RequestRefused) as again:
                await alice.report_events(sent.session_id, [an_event()], 0.0)
            assert again.value.code == "BAD_ARGUMENT"
            assert len((await bob.metrics(sent.transfer_id, "csv")).splitlines()) == len(rows) + 1


async def test_a_download_or_an_unknown_or_foreign_session_is_refused(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        other_code, other_token = await new_room(services, "carol")
        async with (
            member(services, code, "alice", token) as alice,
            member(services, other_code, "carol", other_token) as carol,
        ):
            sent = await upload(
                alice, HOST, make_file(tmp_path, "f.bin", 10_000), TransferOptions()
            )
            got = await download(alice, HOST, "f.bin", tmp_path / "copy", TransferOptions())
            assert sent.ok and got.ok
            with pytest.raises(RequestRefused) as download_report:
                await alice.report_events(got.session_id, [an_event()], 0.0)
            assert download_report.value.code == "BAD_ARGUMENT"
            for session in ("0" * 32, sent.session_id):  # unknown; another room's transfer
                with pytest.raises(RequestRefused) as foreign:
                    await carol.report_events(session, [an_event()], 0.0)
                assert foreign.value.code == "NOT_FOUND"
            assert await alice.list_files()  # both connections still usable
            assert await carol.list_files() == []


async def test_a_malformed_report_stores_nothing_uses_the_attempt_and_the_connection_goes_on(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with member(services, code, "alice", token) as alice:
            ticket = await alice.upload_ticket(10, "a" * 64, "never.bin")
            body = LINE + b"0.25 ACK 2 4096 - - - 200 2 64 0 511\n"  # time goes back
            await alice.conn.send(f"EVENTS {ticket.session_id} {len(body)}\n".encode() + body)
            with pytest.raises(RequestRefused) as refused:
                await alice.receive_reply()
            assert (
                refused.value.code == "BAD_ARGUMENT" and "time goes back" in refused.value.message
            )
            assert await alice.request("PING") == "PONG"
            # Nothing was stored, and the transfer's one attempt is used: a bad report
            # cannot be sent again and again, each parsed at the server's expense.
            with pytest.raises(RequestRefused) as again:
                await alice.report_events(ticket.session_id, [an_event()], 0.0)
            assert again.value.message == "this transfer has had its report"
            transfers = await alice.transfers()
            assert (await alice.metrics(transfers[0].transfer_id, "csv")).count(b"\n") == 1


@pytest.mark.parametrize("admitted", [False, True])
async def test_refusals_before_the_body_close_the_connection(
    services: BoundPorts, admitted: bool
) -> None:
    # The announced body cannot be skipped safely, so these answer and hang up.
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with raw_client(services["files_tcp"]) as client:
            size = 10
            if admitted:
                assert (await client.ask(f"HELLO {code} alice {token}")).startswith("OK HELLO")
                size = 50_000 * MAX_REPORT_LINE_BYTES + 1  # beyond the default event cap
            await client.send(f"EVENTS {'ab' * 16} {size}\n".encode())
            reply = await client.line()
            expected = "ERR TOO_LARGE " if admitted else "ERR NOT_MEMBER "
            assert reply is not None and reply.startswith(expected), reply
            assert await client.closed()


async def test_a_malformed_events_line_closes_the_connection(
    services: BoundPorts, tmp_path: Path
) -> None:
    # Its body would otherwise be read as commands: here, a DELETE of someone else's file.
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with member(services, code, "alice", token) as alice:
            sent = await upload(
                alice, HOST, make_file(tmp_path, "victim.bin", 100), TransferOptions()
            )
            assert sent.ok
        body = b"DELETE victim.bin\n"
        for line in (f"EVENTS {'AB' * 16} {len(body)}", f"EVENTS {'ab' * 16} 18x", "EVENTS"):
            async with raw_client(services["files_tcp"]) as bob:
                assert (await bob.ask(f"HELLO {code} bob")).startswith("OK HELLO")
                await bob.send(line.encode() + b"\n" + body)
                reply = await bob.line()
                assert reply is not None and reply.startswith("ERR BAD_ARGUMENT "), reply
                assert await bob.closed()
        async with member(services, code, "alice", token) as alice:
            assert [f.name for f in await alice.list_files()] == ["victim.bin"]


async def test_an_empty_report_is_refused_and_does_not_use_up_the_report(
    services: BoundPorts,
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with member(services, code, "alice", token) as alice:
            ticket = await alice.upload_ticket(10, "a" * 64, "never.bin")
            with pytest.raises(RequestRefused) as empty:
                await alice.report_events(ticket.session_id, [], 0.0)
            assert empty.value.code == "BAD_ARGUMENT"
            assert await alice.report_events(ticket.session_id, [an_event()], 0.0) == 1
            with pytest.raises(RequestRefused):
                await alice.report_events(ticket.session_id, [an_event()], 0.0)


@pytest.mark.parametrize("body_bytes", [0, 4 << 20])
async def test_a_report_beyond_the_servers_limit_never_fails_the_upload(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body_bytes: int
) -> None:
    # The server answers TOO_LARGE and closes without reading the body. A body larger than
    # the socket buffers makes the client's send fail with a reset before it can read the
    # answer. Either way the file is stored and the upload succeeds.
    if body_bytes:
        monkeypatch.setattr(
            "syncrox.client.files.encode_event_report", lambda *_args: LINE * (body_bytes // 48)
        )
    small = dataclasses.replace(config.files, max_events_per_transfer=2)
    async with running_service(dataclasses.replace(config, files=small), files.serve) as (
        ports,
        _,
    ):
        with trio.fail_after(IO_TIMEOUT_S):
            code, token = await new_room(ports)
            async with member(ports, code, "alice", token) as alice:
                source = make_file(tmp_path, "big.bin", 400_000)
                sent = await upload(alice, HOST, source, TransferOptions())
            assert sent.ok and sent.events_reported == 0
            assert sent.report_failure is not None
            # The small body gets the answer; the large one a reset here (measured), or the
            # answer if the socket buffers took it all.
            expected = {"CLOSED", "TOO_LARGE"} if body_bytes else {"TOO_LARGE"}
            assert sent.report_failure[0] in expected


async def test_reports_wait_for_a_slot_then_get_busy(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bodies held at once are bounded server-wide; a slow body delays other reports only.
    monkeypatch.setattr(files, "CONCURRENT_REPORTS", 1)
    monkeypatch.setattr(files, "REPORT_QUEUE_S", 0.3)
    async with running_service(config, files.serve) as (ports, _):
        with trio.fail_after(IO_TIMEOUT_S):
            code, _token = await new_room(ports)
            async with (
                raw_client(ports["files_tcp"]) as slow,
                raw_client(ports["files_tcp"]) as other,
            ):
                for client in (slow, other):
                    assert (await client.ask(f"HELLO {code} bob")).startswith("OK HELLO")
                await slow.send(f"EVENTS {'ab' * 16} {len(LINE)}\n".encode() + LINE[:10])
                await trio.sleep(0.1)  # the slow report has the only slot
                await other.send(f"EVENTS {'cd' * 16} {len(LINE)}\n".encode() + LINE)
                reply = await other.line()
                assert reply is not None and reply.startswith("ERR BUSY "), reply
                assert await other.closed()
                await slow.send(LINE[10:])  # the slow one still gets its answer
                reply = await slow.line()
                assert reply == "ERR NOT_FOUND no such transfer in this room"
                assert await slow.ask("PING") == "PONG"
