"""Per-user budgets on File Control: tickets and event-report bytes (docs/SECURITY.md)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import trio

from syncrox.client.files import FilesClient, TransferOptions, upload
from syncrox.config import Config, ConfigError, FilesConfig
from syncrox.errors import RequestRefused
from syncrox.protocol.files import transfer_id_of
from syncrox.protocol.files_events import max_report_bytes
from syncrox.protocol.rudp.events import EventKind, TransferEvent
from syncrox.services import files
from syncrox.services.files_udp import EventRecorder
from tests.conftest import IO_TIMEOUT_S
from tests.services.helpers import raw_client, running_service
from tests.services.test_files_events import LINE, an_event, member
from tests.services.test_files_service import make_file, new_room


def with_files(config: Config, **changes: object) -> Config:
    return dataclasses.replace(config, files=dataclasses.replace(config.files, **changes))


async def test_tickets_are_rate_limited_per_user_in_a_room(config: Config) -> None:
    limited = with_files(config, ticket_burst=2, ticket_refill_s=3600.0)
    async with running_service(limited, files.serve) as (ports, _):
        with trio.fail_after(IO_TIMEOUT_S):
            code, token = await new_room(ports)
            async with member(ports, code, "alice", token) as alice:
                await alice.upload_ticket(10, "a" * 64, "one.bin")
                with pytest.raises(RequestRefused) as missing:  # a refused one counts too
                    await alice.download_ticket("nothing.bin")
                assert missing.value.code == "NOT_FOUND"
                with pytest.raises(RequestRefused) as limited_out:
                    await alice.upload_ticket(10, "b" * 64, "two.bin")
                assert limited_out.value.code == "RATE_LIMITED"
                assert "retry in" in limited_out.value.message
                assert [f.name for f in await alice.list_files()] == []  # still served
            async with member(ports, code, "bob") as bob:  # someone else's budget
                await bob.upload_ticket(10, "c" * 64, "three.bin")


async def test_a_room_holds_a_bounded_number_of_files(config: Config, tmp_path: Path) -> None:
    # LIST answers with every file at once: their number is bounded.
    limited = with_files(config, max_files_per_room=2)
    async with running_service(limited, files.serve) as (ports, _):
        with trio.fail_after(IO_TIMEOUT_S):
            code, token = await new_room(ports)
            async with member(ports, code, "alice", token) as alice:
                for name in ("one.bin", "two.bin"):
                    source = make_file(tmp_path, name, 3000)
                    assert (await upload(alice, "127.0.0.1", source, TransferOptions())).ok
                with pytest.raises(RequestRefused) as full:
                    await alice.upload_ticket(10, "a" * 64, "three.bin")
                assert full.value.code == "ROOM_FULL" and "delete one" in full.value.message
                await alice.upload_ticket(10, "b" * 64, "two.bin")  # replacing always fits
                await alice.delete("one.bin")
                await alice.upload_ticket(10, "c" * 64, "three.bin")


async def test_a_ticket_comes_back_after_the_refill_period(config: Config) -> None:
    limited = with_files(config, ticket_burst=1, ticket_refill_s=0.2)
    async with running_service(limited, files.serve) as (ports, _):
        with trio.fail_after(IO_TIMEOUT_S):
            code, token = await new_room(ports)
            async with member(ports, code, "alice", token) as alice:
                await alice.upload_ticket(10, "a" * 64, "one.bin")
                with pytest.raises(RequestRefused):
                    await alice.upload_ticket(10, "a" * 64, "one.bin")
                await trio.sleep(0.3)
                await alice.upload_ticket(10, "a" * 64, "one.bin")


async def test_event_report_bytes_are_rate_limited_per_user(config: Config) -> None:
    # The burst is raised to one maximal report (two events here); the rate is tiny. The
    # bytes are charged before the body is read: a report refused after it still costs.
    limited = with_files(
        config, max_events_per_transfer=2, report_burst_bytes=1, report_bytes_per_s=1e-3
    )
    maximal = max_report_bytes(2)
    async with running_service(limited, files.serve) as (ports, _):
        with trio.fail_after(IO_TIMEOUT_S):
            code, token = await new_room(ports)
            async with member(ports, code, "alice", token) as alice:
                first, second = [
                    await alice.upload_ticket(10, "a" * 64, f"f{n}.bin") for n in range(2)
                ]
            async with raw_client(ports["files_tcp"]) as raw:
                assert (await raw.ask(f"HELLO {code} alice {token}")).startswith("OK HELLO")
                await raw.send(f"EVENTS {first.session_id} {maximal}\n".encode() + b"x" * maximal)
                reply = await raw.line()
                assert reply is not None and reply.startswith("ERR BAD_ARGUMENT"), reply
                reply = await raw.ask(f"EVENTS {second.session_id} {len(LINE)}")
                assert reply.startswith("ERR RATE_LIMITED"), reply
                assert await raw.closed()  # refused before its body: it cannot be skipped
            async with member(ports, code, "bob") as bob:
                ticket = await bob.upload_ticket(10, "b" * 64, "bob.bin")
                assert await bob.report_events(ticket.session_id, [an_event()], 0.0) == 1


@pytest.mark.parametrize(
    "changes",
    [{"ticket_burst": 0}, {"ticket_refill_s": 0.0}, {"report_bytes_per_s": 0.0}],
)
def test_budgets_must_be_sane(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        FilesConfig(**changes)  # type: ignore[arg-type]


async def test_the_servers_event_record_is_bounded_even_for_telling_events() -> None:
    recorder = EventRecorder(max_events=3)
    for seq in range(1, 11):
        recorder(
            TransferEvent(0.0, EventKind.ACK, seq, 4096, 1.0, 1.0, 0.5, 200.0, 2.0, 64.0, 0, 9)
        )
    for seq in range(1, 11):
        recorder(
            TransferEvent(1.0, EventKind.TIMEOUT, seq, 0, None, 1.0, 0.5, 400.0, 1.0, 2.0, 0, 9)
        )
    _, rows = recorder.take()
    assert [row.event for row in rows].count("ACK") == 3  # routine ones: up to the cap
    assert len(rows) == 6 and recorder.dropped == 14  # telling ones: up to twice the cap


async def test_metrics_exports_are_built_one_at_a_time(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_export = files._export

    def slow_export(*args: object) -> bytes:
        time.sleep(0.5)
        return real_export(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "_export", slow_export)
    monkeypatch.setattr(files, "EXPORT_QUEUE_S", 0.1)
    async with running_service(config, files.serve) as (ports, _):
        with trio.fail_after(IO_TIMEOUT_S):
            code, token = await new_room(ports)
            async with (
                member(ports, code, "alice", token) as alice,
                member(ports, code, "bob") as bob,
            ):
                ticket = await alice.upload_ticket(10, "a" * 64, "f.bin")
                assert await alice.report_events(ticket.session_id, [an_event()], 0.0) == 1
                transfer_id = transfer_id_of(ticket.session_id)
                outcomes: list[object] = []

                async def export(client: FilesClient) -> None:
                    try:
                        outcomes.append(await client.metrics(transfer_id, "csv"))
                    except RequestRefused as exc:
                        outcomes.append(exc.code)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(export, alice)
                    nursery.start_soon(export, bob)
            assert sorted(map(type, outcomes), key=str) == [bytes, str]
            assert "BUSY" in outcomes
