"""File Control + File Data over real loopback sockets, in-process."""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import random
from pathlib import Path
from typing import BinaryIO

import pytest
import trio
import trio.testing

import syncrox.client.files as client_files
from syncrox.client.files import FilesClient, TransferOptions, download, upload
from syncrox.client.rooms import RoomsClient
from syncrox.config import Config
from syncrox.errors import RemoteProtocolError, RequestRefused, SyncroxError
from syncrox.net.lines import LineConnection
from syncrox.netem import NetemConfig
from syncrox.protocol.files import transfer_id_of
from syncrox.protocol.rudp.codec import encode_json
from syncrox.protocol.rudp.connection import Connection
from syncrox.protocol.rudp.packets import Codec, Packet, PacketType
from syncrox.services.context import BoundPorts
from syncrox.services.runner import run_services
from syncrox.store.blobs import BlobStore, BlobWriter
from tests.conftest import IO_TIMEOUT_S
from tests.services.chat_helpers import with_tcp
from tests.services.helpers import raw_client

HOST = "127.0.0.1"


async def new_room(ports: BoundPorts, user: str = "alice") -> tuple[str, str]:
    async with RoomsClient.connect(HOST, ports["rooms"]) as rooms:
        return await rooms.create(user)


def make_file(tmp_path: Path, name: str, size: int, seed: int = 1) -> Path:
    path = tmp_path / name
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


async def test_upload_list_download_delete_and_metrics(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        source = make_file(tmp_path, "report one.bin", 300_000)
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            sent = await upload(files, HOST, source, TransferOptions(codec=Codec.BINARY))
            assert sent.ok, sent.failure
            [entry] = await files.list_files()
            assert (entry.name, entry.size) == ("report one.bin", 300_000)
            assert entry.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
            output = tmp_path / "copy.bin"
            got = await download(files, HOST, "report one.bin", output, TransferOptions())
            assert got.ok, got.failure
            assert output.read_bytes() == source.read_bytes()
            assert not (tmp_path / "copy.bin.part").exists()
            transfers = await files.transfers()
            assert {t.status for t in transfers} == {"stored", "delivered"}
            down = next(t for t in transfers if t.direction == "download")
            csv_text = (await files.metrics(down.transfer_id, "csv")).decode()
            header, *rows = csv_text.splitlines()
            assert (
                header
                == "ts,room,file,direction,seq,bytes,rtt_ms,srtt_ms,rto_ms,cwnd,ssthresh,event,algo"
            )
            assert any(",ACK," in row for row in rows) and any(",COMPLETE," in r for r in rows)
            qlog = json.loads(await files.metrics(down.transfer_id, "qlog"))
            assert qlog["traces"][0]["events"]
            await files.delete("report one.bin")
            assert await files.list_files() == []
            with pytest.raises(RequestRefused) as missing:
                await files.download_ticket("report one.bin")
            assert missing.value.code == "NOT_FOUND"


async def test_rooms_are_isolated(services: BoundPorts, tmp_path: Path) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code_a, token_a = await new_room(services, "alice")
        code_b, token_b = await new_room(services, "bob")
        async with FilesClient.connect(HOST, services["files_tcp"]) as alice:
            await alice.hello(code_a, "alice", token_a)
            result = await upload(
                alice, HOST, make_file(tmp_path, "secret.txt", 1000), TransferOptions()
            )
            assert result.ok
        async with FilesClient.connect(HOST, services["files_tcp"]) as bob:
            await bob.auth(token_b)
            assert bob.room == code_b
            assert await bob.list_files() == []
            for action in (bob.download_ticket("secret.txt"), bob.delete("secret.txt")):
                with pytest.raises(RequestRefused) as refused:
                    await action
                assert refused.value.code == "NOT_FOUND"
            [transfer] = await alice_transfers(services, code_a, token_a)
            with pytest.raises(RequestRefused):
                await bob.metrics(transfer, "csv")


async def alice_transfers(ports: BoundPorts, code: str, token: str) -> list[str]:
    async with FilesClient.connect(HOST, ports["files_tcp"]) as files:
        await files.hello(code, "alice", token)
        return [t.transfer_id for t in await files.transfers()]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"LIST\n", "NOT_MEMBER"),
        (b"UPLOAD 10 " + b"a" * 64 + b" x.txt\n", "NOT_MEMBER"),
        (b"FROB\n", "BAD_COMMAND"),
        (b"HELLO 12 alice\n", "BAD_ROOM"),
        (b"HELLO 1234 alice\n", "NOT_FOUND"),
        (b"\xff\xfe\n", "BAD_UTF8"),
    ],
)
async def test_bad_lines_get_clear_errors(services: BoundPorts, line: bytes, code: str) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        async with raw_client(services["files_tcp"]) as client:
            await client.send(line)
            reply = await client.line()
            assert reply is not None and reply.startswith(f"ERR {code} "), reply
            assert await client.ask("PING") == "PONG"


@pytest.mark.parametrize(
    "line",
    [
        "UPLOAD 10 {sha} ../etc/passwd",
        "UPLOAD 10 {sha} .hidden",
        "DOWNLOAD a/b",
        "UPLOAD 10 nothex x.txt",
        "UPLOAD 99999999999999 {sha} big.bin",
        "METRICS 123 csv",
        "DOWNLOAD  x.txt",  # two spaces: not a request for " x.txt"
        "UPLOAD 10 {sha}  x.txt",
    ],
)
async def test_bad_arguments_after_admission(services: BoundPorts, line: str) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with raw_client(services["files_tcp"]) as client:
            assert (await client.ask(f"HELLO {code} alice {token}")).startswith("OK HELLO")
            reply = await client.ask(line.format(sha="a" * 64))
            assert reply.split(" ")[1] in {"BAD_NAME", "BAD_ARGUMENT", "TOO_LARGE"}, reply
            assert await client.ask("PING") == "PONG"


async def test_download_through_emulated_loss_and_a_second_upload_replaces(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S * 2):
        code, token = await new_room(services)
        lossy = TransferOptions(
            algo="cubic", netem=NetemConfig(loss=0.05, delay_ms=2, duplicate=0.02, seed=3)
        )
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            first = make_file(tmp_path, "v.bin", 200_000, seed=1)
            assert (await upload(files, HOST, first, lossy)).ok
            second = make_file(tmp_path, "v2.bin", 150_000, seed=2)
            assert (await upload(files, HOST, second, lossy, name="v.bin")).ok
            [entry] = await files.list_files()
            assert entry.size == 150_000
            output = tmp_path / "out.bin"
            result = await download(files, HOST, "v.bin", output, lossy)
            assert result.ok, result.failure
            assert output.read_bytes() == second.read_bytes()


async def test_zero_length_file(services: BoundPorts, tmp_path: Path) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            assert (
                await upload(files, HOST, make_file(tmp_path, "empty", 0), TransferOptions())
            ).ok
            output = tmp_path / "empty.out"
            assert (await download(files, HOST, "empty", output, TransferOptions())).ok
            assert output.read_bytes() == b""


async def test_an_interrupted_upload_resumes_where_it_stopped(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S * 2):
        code, token = await new_room(services)
        source = make_file(tmp_path, "big.bin", 1_000_000)
        slow = TransferOptions(netem=NetemConfig(rate_bytes_per_s=1_500_000, seed=1))
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            with trio.CancelScope() as scope:

                def stop_half_way(done: int, total: int) -> None:
                    if done >= total // 2:
                        scope.cancel()  # the client dies part-way

                await upload(files, HOST, source, slow, progress=stop_half_way)
            assert scope.cancelled_caught
            assert await files.list_files() == []
            result = await upload(files, HOST, source, TransferOptions())
            assert result.ok, result.failure
            assert result.resumed_bytes >= 400_000
            [entry] = await files.list_files()
            assert entry.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
            output = tmp_path / "back.bin"
            assert (await download(files, HOST, "big.bin", output, TransferOptions())).ok
            assert output.read_bytes() == source.read_bytes()


async def test_an_interrupted_download_resumes_from_its_part_file(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S * 2):
        code, token = await new_room(services)
        source = make_file(tmp_path, "big.bin", 1_000_000)
        slow = TransferOptions(netem=NetemConfig(rate_bytes_per_s=1_500_000, seed=1))
        output = tmp_path / "copy.bin"
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            assert (await upload(files, HOST, source, TransferOptions())).ok
            with trio.CancelScope() as scope:

                def stop_half_way(done: int, total: int) -> None:
                    if done >= total // 2:
                        scope.cancel()

                await download(files, HOST, "big.bin", output, slow, progress=stop_half_way)
            assert not output.exists() and (tmp_path / "copy.bin.part").exists()
            result = await download(files, HOST, "big.bin", output, TransferOptions())
            assert result.ok, result.failure
            assert result.resumed_bytes >= 400_000
            assert output.read_bytes() == source.read_bytes()


class FullDisk:
    """A blob's temporary file whose writes fail like a full disk once ``room`` bytes are
    taken, ``failures[0]`` times in all (shared by every writer of the test)."""

    def __init__(self, inner: BinaryIO, room: int, failures: list[int]) -> None:
        self.inner, self.room, self.failures = inner, room, failures

    def write(self, data: bytes) -> int:
        if self.failures[0] and len(data) > self.room:
            self.failures[0] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.inner.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_a_disk_error_mid_upload_is_reported_and_the_retry_starts_afresh(
    services: BoundPorts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = [1]
    original = BlobStore.writer

    def flaky_writer(store: BlobStore) -> BlobWriter:
        writer = original(store)
        writer._file = FullDisk(writer._file, 300_000, failures)  # type: ignore[assignment]
        return writer

    monkeypatch.setattr(BlobStore, "writer", flaky_writer)
    with trio.fail_after(IO_TIMEOUT_S * 2):
        code, token = await new_room(services)
        source = make_file(tmp_path, "big.bin", 1_000_000)
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            first = await upload(files, HOST, source, TransferOptions())
            assert not first.ok and first.failure is not None and first.failure[0] == "STORE"
            assert failures == [0]
            # The failed blob's temporary file is gone, so nothing may be resumed from it
            # (this used to write to the closed file and take the file service down).
            second = await upload(files, HOST, source, TransferOptions())
            assert second.ok, second.failure
            assert second.resumed_bytes == 0
            [entry] = await files.list_files()
            assert entry.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
            output = tmp_path / "back.bin"
            assert (await download(files, HOST, "big.bin", output, TransferOptions())).ok
            assert output.read_bytes() == source.read_bytes()
            statuses = sorted(t.status for t in await files.transfers())
            assert statuses == ["delivered", "failed:STORE", "stored"]


async def test_transfers_lists_public_ids_never_the_session_secret(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        source = make_file(tmp_path, "a.bin", 50_000)
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        async with (
            FilesClient.connect(HOST, services["files_tcp"]) as alice,
            FilesClient.connect(HOST, services["files_tcp"]) as bob,
        ):
            await alice.hello(code, "alice", token)
            await bob.hello(code, "bob")
            # A ticket in progress: its session id would let Bob abort or redirect it.
            ticket = await alice.upload_ticket(50_000, sha, "a.bin")
            [listed] = await bob.transfers()
            assert listed.status == "open"
            assert listed.transfer_id != ticket.session_id
            assert listed.transfer_id == transfer_id_of(ticket.session_id)
            assert [t.transfer_id for t in await alice.transfers()] == [listed.transfer_id]

            result = await upload(alice, HOST, source, TransferOptions())
            assert result.ok, result.failure
            done = next(t for t in await bob.transfers() if t.status == "stored")
            assert done.transfer_id == result.transfer_id != result.session_id
            # Every member may still measure a transfer (the analytics page) by its public id.
            csv_text = (await bob.metrics(done.transfer_id, "csv")).decode()
            assert csv_text.startswith("ts,room,file,direction,")
            qlog = json.loads(await bob.metrics(done.transfer_id, "qlog"))
            assert qlog["traces"][0]["common_fields"]["group_id"] == done.transfer_id
            with pytest.raises(RequestRefused) as refused:
                await bob.metrics(result.session_id, "csv")
            assert refused.value.code == "NOT_FOUND"


async def test_the_ticket_round_trip_times_the_syn(
    services: BoundPorts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float | None] = []
    connect = Connection.connect

    def spy(self: Connection, now: float, *, path_rtt_s: float | None = None) -> None:
        seen.append(path_rtt_s)
        connect(self, now, path_rtt_s=path_rtt_s)

    monkeypatch.setattr(Connection, "connect", spy)
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            sent = await upload(files, HOST, make_file(tmp_path, "t.bin", 5000), TransferOptions())
            got = await download(files, HOST, "t.bin", tmp_path / "copy", TransferOptions())
            # Emulated delays apply to UDP only: the control round trip says nothing then.
            emulated = TransferOptions(netem=NetemConfig(delay_ms=1.0))
            again = await upload(files, HOST, make_file(tmp_path, "u.bin", 5000), emulated)
            assert sent.ok and got.ok and again.ok
    assert len(seen) == 3 and all(rtt is not None and 0 < rtt < 1 for rtt in seen[:2])
    assert seen[2] is None


async def test_an_upload_longer_than_the_control_idle_timeout_still_reports(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control connection is silent during the UDP phase; the server closed it as idle,
    # and the upload's EVENTS report (and its LIST check) failed.
    monkeypatch.setattr(client_files, "KEEPALIVE_S", 0.2)
    slow = TransferOptions(netem=NetemConfig(rate_bytes_per_s=100_000, seed=1))
    short_idle = with_tcp(config, idle_timeout_s=0.6)
    async with trio.open_nursery() as nursery:
        ports = await nursery.start(functools.partial(run_services, short_idle, ui=False))
        with trio.fail_after(IO_TIMEOUT_S):
            code, token = await new_room(ports)
            async with FilesClient.connect(HOST, ports["files_tcp"]) as files:
                await files.hello(code, "alice", token)
                source = make_file(tmp_path, "slow.bin", 150_000)  # ~1.5 s at the cap
                result = await upload(files, HOST, source, slow)
                assert result.ok, result.failure
                assert result.seconds > 1.0
                assert result.report_failure is None and result.events_reported > 0
        nursery.cancel_scope.cancel()


async def test_a_server_that_admits_but_never_answers_a_ticket_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real time: the client checks its output path in a worker thread, during which a
    # virtual clock would leap ahead.
    monkeypatch.setattr(client_files, "REQUEST_TIMEOUT_S", 0.5)

    async def admit_then_hang(stream: trio.SocketStream) -> None:
        await stream.receive_some(1024)
        await stream.send_all(b"OK HELLO 1234 alice\n")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, admit_then_hang, 0, host=HOST)
        )
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(IO_TIMEOUT_S):
            async with FilesClient.connect(HOST, port) as files:
                await files.hello("1234", "alice")
                with pytest.raises(trio.TooSlowError):
                    await download(files, HOST, "x.bin", tmp_path / "x.bin", TransferOptions())
                source = make_file(tmp_path, "up.bin", 1000)
                with pytest.raises(trio.TooSlowError):
                    await upload(files, HOST, source, TransferOptions())
        nursery.cancel_scope.cancel()


async def test_downloading_onto_a_directory_is_refused_before_any_ticket(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.hello(code, "alice", token)
            source = make_file(tmp_path, "a.bin", 5000)
            assert (await upload(files, HOST, source, TransferOptions())).ok
            with pytest.raises(SyncroxError, match="is a directory"):
                await download(files, HOST, "a.bin", tmp_path, TransferOptions())
            assert await files.transfers()  # the connection is still in step


async def test_a_metrics_body_beyond_any_real_report_is_refused_unread(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def announce_a_huge_report(stream: trio.SocketStream) -> None:
        await stream.receive_some(1024)
        await stream.send_all(b"OK HELLO 1234 alice\n")
        await stream.receive_some(1024)
        await stream.send_all(b"METRICS csv 999999999999\n" + b"x" * 65536)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, announce_a_huge_report, 0, host=HOST)
        )
        with trio.fail_after(60):
            async with FilesClient.connect(HOST, listeners[0].socket.getsockname()[1]) as files:
                await files.hello("1234", "alice")
                with pytest.raises(RemoteProtocolError, match="beyond any real one"):
                    await files.metrics("a" * 32)
        nursery.cancel_scope.cancel()


async def test_a_ping_left_unanswered_closes_the_control_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Its PONG could still come and be read as the next request's reply.
    ours, theirs = trio.testing.memory_stream_pair()
    control = FilesClient(LineConnection(ours, max_line_bytes=4096))
    with trio.fail_after(client_files.KEEPALIVE_S + client_files.REQUEST_TIMEOUT_S + 10):
        await client_files._keep_control_alive(control)  # returns: the PING went unanswered
    assert b"PING" in await theirs.receive_some()
    with pytest.raises((trio.ClosedResourceError, trio.BrokenResourceError)):
        await control.request("LIST")


async def test_a_peers_made_up_reset_reason_is_recorded_as_aborted(
    services: BoundPorts,
) -> None:
    # A member sending RST "bye." made every client's TRANSFERS fail (it refuses fields
    # that are not plain words), for the whole room, until 50 newer transfers pushed it out.
    with trio.fail_after(IO_TIMEOUT_S):
        code, token = await new_room(services)
        async with FilesClient.connect(HOST, services["files_tcp"]) as alice:
            await alice.hello(code, "alice", token)
            ticket = await alice.upload_ticket(10, "a" * 64, "x.bin")
            rst = Packet(PacketType.RST, ticket.session_id, error="bye.")
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
                await sock.sendto(encode_json(rst), (HOST, ticket.udp_port))
            for _ in range(100):  # until the session has ended
                await trio.sleep(0.05)
                [entry] = await alice.transfers()
                if entry.status != "open":
                    break
            assert entry.status == "failed:ABORTED"
