"""Resuming uploads across sessions that differ: in chunk size, in codec, after every chunk
arrived but not the FIN, and while the first session is still storing the file."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

import syncrox.client.files as client_files
import syncrox.store.blobs as blobs_module
from syncrox.client.files import FilesClient, TransferOptions, download, upload
from syncrox.config import Config
from syncrox.errors import LocalProtocolError, RequestRefused, StoreError
from syncrox.net.datagram import UdpTransport
from syncrox.netem import NetemConfig
from syncrox.protocol.files import Upload
from syncrox.protocol.rudp.codec import decode_datagram
from syncrox.protocol.rudp.packets import Codec, PacketType
from syncrox.services.context import BoundPorts
from syncrox.services.files_udp import GARBAGE_EVERY_S, FileData
from syncrox.services.registry import RoomRegistry
from syncrox.store import Store
from syncrox.store.files import FileRecord, SqliteFileStore, TransferRecord
from tests.conftest import IO_TIMEOUT_S
from tests.services.test_files_service import HOST, make_file, new_room


async def interrupted_upload(files: FilesClient, source: Path, options: TransferOptions) -> None:
    """An upload whose client dies half-way (the server keeps a partial)."""
    with trio.CancelScope() as scope:

        def stop_half_way(done: int, total: int) -> None:
            if done >= total // 2:
                scope.cancel()

        await upload(files, HOST, source, options, progress=stop_half_way)
    assert scope.cancelled_caught


async def assert_stored(files: FilesClient, source: Path, tmp_path: Path) -> None:
    expected = await trio.Path(source).read_bytes()
    [entry] = await files.list_files()
    assert entry.sha256 == hashlib.sha256(expected).hexdigest()
    output = tmp_path / "back.bin"
    assert (await download(files, HOST, source.name, output, TransferOptions())).ok
    assert await trio.Path(output).read_bytes() == expected


@pytest.mark.parametrize(
    ("first", "then", "resumes"),
    [
        # A larger chunk than the client now accepts: start afresh (it used to be refused
        # on every retry, each retry keeping the partial alive).
        (TransferOptions(mss=8192), TransferOptions(), False),
        # A chunk JSON cannot carry: start afresh (its datagrams used to be too large to send).
        (
            TransferOptions(codec=Codec.BINARY, mss=61440),
            TransferOptions(codec=Codec.JSON, mss=61440),
            False,
        ),
        # The default chunk, now that the client would take a larger one: resumed.
        (TransferOptions(), TransferOptions(mss=8192), True),
    ],
)  # fmt: skip
async def test_a_resume_with_another_chunk_size_or_codec_still_stores_the_file(
    services: BoundPorts, tmp_path: Path, first: TransferOptions, then: TransferOptions,
    resumes: bool,
) -> None:  # fmt: skip
    first = dataclasses.replace(first, netem=NetemConfig(rate_bytes_per_s=2_000_000, seed=1))
    with trio.fail_after(IO_TIMEOUT_S * 2):
        code, token = await new_room(services)
        source = make_file(tmp_path, "big.bin", 1_000_000)
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            await interrupted_upload(files, source, first)
            result = await upload(files, HOST, source, then)
            assert result.ok, result.failure
            assert (result.resumed_bytes >= 400_000) is resumes, result.resumed_bytes
            assert result.timeouts == 0
            await assert_stored(files, source, tmp_path)


class _LosesFins:
    """The client's UDP socket, except that every FIN it sends is lost."""

    def __init__(self, inner: UdpTransport, fin_sent: trio.Event) -> None:
        self.inner, self.fin_sent = inner, fin_sent
        self.local_address = inner.local_address

    async def receive_batch(self) -> list[tuple[bytes, tuple[str, int]]]:
        return await self.inner.receive_batch()

    async def send(self, data: bytes, address: tuple[str, int]) -> None:
        if decode_datagram(data).type is PacketType.FIN:
            self.fin_sent.set()
            return
        await self.inner.send(data, address)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("first_mss", [4096, 8192])
async def test_an_upload_whose_every_chunk_arrived_resumes_to_its_end(
    services: BoundPorts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_mss: int
) -> None:
    # 10 000 bytes: the last chunk is short, so "chunks held" is not bytes // chunk size
    # (the last chunk used to be asked for again and written twice: BAD_DIGEST). With a
    # first chunk size the resuming client does not accept, the whole file is still held:
    # no chunk is needed at all, whatever the chunk size.
    fin_sent = trio.Event()
    real_bind = UdpTransport.bind

    def bind_losing_fins(host: str, port: int) -> _LosesFins:
        return _LosesFins(real_bind(host, port), fin_sent)

    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        source = make_file(tmp_path, "f.bin", 10_000)
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            monkeypatch.setattr(client_files.UdpTransport, "bind", bind_losing_fins)
            async with trio.open_nursery() as nursery:
                first = TransferOptions(mss=first_mss)
                nursery.start_soon(upload, files, HOST, source, first)
                await fin_sent.wait()
                await trio.sleep(0.2)
                nursery.cancel_scope.cancel()  # the client dies before its FIN arrives
            monkeypatch.undo()
            result = await upload(files, HOST, source, TransferOptions())
            assert result.ok, result.failure
            assert result.resumed_bytes == 10_000 and result.retransmissions == 0
            await assert_stored(files, source, tmp_path)


async def test_an_upload_being_stored_cannot_be_taken_over(
    services: BoundPorts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second UPLOAD of the same file while the first is committing it used to take its
    # partial over: both clients told they failed, or the verified file lost.
    real_fsync, storing = os.fsync, trio.Event()
    token_for_thread = trio.lowlevel.current_trio_token()

    def slow_fsync(fd: int) -> None:
        if not storing.is_set():
            trio.from_thread.run_sync(storing.set, trio_token=token_for_thread)
            time.sleep(1.0)  # a large file's fsync
        real_fsync(fd)

    monkeypatch.setattr(blobs_module.os, "fsync", slow_fsync)
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        source = make_file(tmp_path, "f.bin", 10_000)
        async with (
            FilesClient.connect(HOST, services["files_tcp"]) as alice,
            FilesClient.connect(HOST, services["files_tcp"]) as bob,
        ):
            await alice.hello(code, "alice", token)
            await bob.hello(code, "bob")
            async with trio.open_nursery() as nursery:
                results = []

                async def first() -> None:
                    results.append(await upload(alice, HOST, source, TransferOptions()))

                nursery.start_soon(first)
                await storing.wait()
                with pytest.raises(RequestRefused) as busy:
                    await bob.upload_ticket(
                        10_000, hashlib.sha256(source.read_bytes()).hexdigest(), "f.bin"
                    )
                assert busy.value.code == "BUSY"
                assert "being stored" in busy.value.message
            [stored] = results
            assert stored.ok, stored.failure
            monkeypatch.undo()
            await assert_stored(alice, source, tmp_path)


async def test_a_ticket_that_could_not_be_recorded_leaves_nothing_claimed(
    services: BoundPorts, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The partial used to stay claimed by a session that never ran: the name was BUSY for
    # any other content until the server restarted.
    real = SqliteFileStore.start_transfer
    failures = [1]

    async def flaky(self: SqliteFileStore, record: TransferRecord) -> None:
        if failures:
            failures.pop()
            raise StoreError("database error: disk I/O error")
        await real(self, record)

    monkeypatch.setattr(SqliteFileStore, "start_transfer", flaky)
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            with pytest.raises(RequestRefused) as failed:
                await files.upload_ticket(10, "a" * 64, "x.bin")
            assert failed.value.code == "INTERNAL"  # answered, the connection goes on
            await files.upload_ticket(10, "b" * 64, "x.bin")  # other content, same name


@contextmanager
def inline_file_data(config: Config, **changes: object) -> Iterator[tuple[Store, FileData]]:
    """The File Data service alone, its store and disk work inline (for virtual time)."""
    store = Store.open(config.data_dir, sqlite_worker_thread=False)
    try:
        files_config = dataclasses.replace(config.files, disk_worker_thread=False, **changes)
        yield store, FileData(files_config, store.files, UdpTransport.bind(HOST, 0))
    finally:
        store.close()


async def test_an_upload_taken_over_while_it_registered_never_runs(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second UPLOAD of the same file while the first still wrote its transfer row took
    # the partial over before the first session was registered: nothing reset it, and its
    # client's FIN later dropped the partial the second one was writing into.
    with inline_file_data(config) as (store, data):
        real_start, calls = store.files.start_transfer, [0]

        async def slow_first(record: TransferRecord) -> None:
            calls[0] += 1
            if calls[0] == 1:
                await trio.sleep(0.2)  # a busy database
            await real_start(record)

        monkeypatch.setattr(store.files, "start_transfer", slow_first)
        body = b"z" * 10_000
        upload_command = Upload(len(body), hashlib.sha256(body).hexdigest(), "a.bin")
        member, _ = await RoomRegistry(store.rooms, config.rooms).create("alice", HOST)
        with trio.fail_after(IO_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(data.run)
                nursery.start_soon(data.open_upload, member, upload_command)
                await trio.sleep(0.05)
                nursery.start_soon(data.open_upload, member, upload_command)
                await trio.sleep(0.5)
                sessions = list(data.router.sessions.values())
                [partial] = data.partials.values()
                assert [s.app for s in sessions] == [partial.app]  # the newer one only
                nursery.cancel_scope.cancel()


async def test_an_expired_rooms_files_leave_the_disk_within_the_hour(
    config: Config, autojump_clock: trio.testing.MockClock
) -> None:
    # The room's rows go by cascade when it expires; its blobs were only collected at the
    # next start-up, so a long-running server's disk grew without bound.
    with inline_file_data(config) as (store, data):
        member, _ = await RoomRegistry(store.rooms, config.rooms).create("alice", HOST)
        kept, gone = store.files.blobs.put(b"kept"), store.files.blobs.put(b"gone")
        await store.files.put_file(FileRecord(member.code, "k.bin", kept, 4, "alice", 0.0))
        other, _ = await RoomRegistry(store.rooms, config.rooms).create("bob", "192.0.2.9")
        await store.files.put_file(FileRecord(other.code, "g.bin", gone, 4, "bob", 0.0))
        with trio.fail_after(2 * GARBAGE_EVERY_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(data.run)
                store.db.call(
                    lambda c: c.execute("DELETE FROM rooms WHERE code = ?", (other.code,))
                )  # what expiry does
                assert store.files.blobs.exists(gone)
                await trio.sleep(GARBAGE_EVERY_S + 1)
                assert not store.files.blobs.exists(gone) and store.files.blobs.exists(kept)
                nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("max_files", "max_sessions", "refusal"), [(2, 4, "ROOM_FULL"), (100, 4, "BUSY")]
)
async def test_uploads_asked_at_the_same_moment_respect_the_rooms_caps(
    config: Config, monkeypatch: pytest.MonkeyPatch, max_files: int, max_sessions: int,
    refusal: str,
) -> None:  # fmt: skip
    # Each request checked the caps, then awaited the database before its session was
    # registered: twelve at once were all granted (and all stored) under caps of 2 and 4.
    caps = {"max_files_per_room": max_files, "max_sessions_per_room": max_sessions}
    with inline_file_data(config, ticket_burst=100, **caps) as (store, data):
        real_start = store.files.start_transfer

        async def slow_start(record: TransferRecord) -> None:
            await trio.sleep(0.1)  # a busy database: the requests overlap
            await real_start(record)

        monkeypatch.setattr(store.files, "start_transfer", slow_start)
        member, _ = await RoomRegistry(store.rooms, config.rooms).create("alice", HOST)
        outcomes: list[str] = []

        async def ask(index: int) -> None:
            body = b"%d" % index
            command = Upload(len(body), hashlib.sha256(body).hexdigest(), f"f{index}.bin")
            try:
                await data.open_upload(member, command)
                outcomes.append("granted")
            except LocalProtocolError as exc:
                outcomes.append(exc.code)

        with trio.fail_after(IO_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(data.run)
                async with trio.open_nursery() as askers:
                    for index in range(12):
                        askers.start_soon(ask, index)
                nursery.cancel_scope.cancel()
        assert outcomes.count("granted") == min(max_files, max_sessions)
        assert set(outcomes) == {"granted", refusal}
