"""EVENTS: an uploading client's congestion events reach the server, so METRICS has them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from syncrox.client.files import FilesClient, TransferOptions, download, upload
from syncrox.errors import RequestRefused
from syncrox.protocol.files_events import MAX_REPORT_LINE_BYTES
from syncrox.protocol.rudp.events import EventKind, TransferEvent
from syncrox.services.context import BoundPorts
from tests.conftest import IO_TIMEOUT_S
from tests.services.helpers import raw_client
from tests.services.test_files_service import HOST, make_file, new_room

LINE = b"0.5 ACK 1 4096 1.5 1.5 0.75 200 2 1048576 0 511\n"


def an_event() -> TransferEvent:
    return TransferEvent(0.0, EventKind.ACK, 1, 4096, 1.0, 1.0, 0.5, 200.0, 2.0, 64.0, 0, 511)


async def test_an_upload_reports_its_events_and_every_member_can_measure_it(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        before = time.time()
        async with (
            FilesClient.connect(HOST, services["files_tcp"]) as alice,
            FilesClient.connect(HOST, services["files_tcp"]) as bob,
        ):
            await alice.hello(code, "alice", token)
            await bob.hello(code, "bob")
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
            FilesClient.connect(HOST, services["files_tcp"]) as alice,
            FilesClient.connect(HOST, services["files_tcp"]) as carol,
        ):
            await alice.hello(code, "alice", token)
            await carol.hello(other_code, "carol", other_token)
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


async def test_a_malformed_report_stores_nothing_and_the_connection_goes_on(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with FilesClient.connect(HOST, services["files_tcp"]) as alice:
            await alice.hello(code, "alice", token)
            ticket = await alice.upload_ticket(10, "a" * 64, "never.bin")
            body = LINE + b"0.25 ACK 2 4096 - - - 200 2 64 0 511\n"  # time goes back
            await alice.conn.send(f"EVENTS {ticket.session_id} {len(body)}\n".encode() + body)
            with pytest.raises(RequestRefused) as refused:
                await alice.receive_reply()
            assert (
                refused.value.code == "BAD_ARGUMENT" and "time goes back" in refused.value.message
            )
            assert await alice.request("PING") == "PONG"
            # Nothing was stored, so a good report is still taken.
            assert await alice.report_events(ticket.session_id, [an_event()], 0.0) == 1


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
