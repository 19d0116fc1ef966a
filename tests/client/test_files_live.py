"""Live delivery during a transfer: ``on_event`` hands each congestion event over as the core
records it, and ``progress`` climbs to the total, both while ``upload``/``download`` still
run (a live chart needs them then, not in ``TransferResult`` at the end)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from syncrox.client.files import FilesClient, TransferOptions, TransferResult, download, upload
from syncrox.netem import NetemConfig
from syncrox.protocol.rudp.events import EventKind, TransferEvent
from syncrox.services.context import BoundPorts
from tests.conftest import IO_TIMEOUT_S
from tests.services.test_files_service import HOST, make_file, new_room

SIZE = 300_000
# 20 ms each way make the transfer last many round trips and several progress reports,
# so "during" is observable (on bare loopback 300 KB can finish between two), and some loss.
LOSSY = TransferOptions(netem=NetemConfig(loss=0.03, delay_ms=20.0, seed=7))
LOOK_EVERY_S = 0.002


class Watch:
    """What a live view would keep: events and progress as they come, and how many events
    had come at each look taken while the transfer was still running."""

    def __init__(self) -> None:
        self.events: list[TransferEvent] = []
        self.progress: list[tuple[int, int]] = []
        self.seen_while_running: list[int] = []
        self.progress_while_running: list[int] = []
        self.running = True

    def on_progress(self, done: int, total: int) -> None:
        self.progress.append((done, total))

    async def look(self) -> None:
        while self.running:
            self.seen_while_running.append(len(self.events))
            if self.progress:
                self.progress_while_running.append(self.progress[-1][0])
            await trio.sleep(LOOK_EVERY_S)

    async def run(self, transfer: Callable[[], Awaitable[TransferResult]]) -> TransferResult:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.look)
            try:
                return await transfer()
            finally:
                self.running = False


async def test_an_upload_delivers_its_events_and_progress_while_it_runs(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        _, token = await new_room(services)
        source = make_file(tmp_path, "live.bin", SIZE)
        watch = Watch()
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.auth(token)
            result = await watch.run(
                lambda: upload(
                    files,
                    HOST,
                    source,
                    LOSSY,
                    progress=watch.on_progress,
                    on_event=watch.events.append,
                )
            )
    assert result.ok, result.failure
    # The same events, in the same order, as the result holds at the end.
    assert watch.events == result.events
    assert watch.events[0].kind is EventKind.START
    assert watch.events[-1].kind is EventKind.COMPLETE
    # Some had arrived, and not yet all, while the upload was still running.
    partial = [n for n in watch.seen_while_running if 0 < n < len(result.events)]
    assert partial, watch.seen_while_running[-5:]
    assert watch.progress[-1] == (SIZE, SIZE)
    assert any(0 < done < SIZE for done in watch.progress_while_running)


async def test_a_download_reports_progress_while_it_runs_and_its_events_live(
    services: BoundPorts, tmp_path: Path
) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        _, token = await new_room(services)
        source = make_file(tmp_path, "down.bin", SIZE, seed=3)
        watch = Watch()
        async with FilesClient.connect(HOST, services["files_tcp"]) as files:
            await files.auth(token)
            assert (await upload(files, HOST, source, TransferOptions())).ok
            output = tmp_path / "copy.bin"
            result = await watch.run(
                lambda: download(
                    files,
                    HOST,
                    "down.bin",
                    output,
                    LOSSY,
                    progress=watch.on_progress,
                    on_event=watch.events.append,
                )
            )
    assert result.ok, result.failure
    assert output.read_bytes() == source.read_bytes()
    # The server sends, so the events of a download are its own; whatever this side
    # records reaches the hook exactly as it reaches the result.
    assert watch.events == result.events
    assert watch.progress[-1] == (SIZE, SIZE)
    assert any(0 < done < SIZE for done in watch.progress_while_running)
