"""File Transfer for the UI: the room's files, and one upload at a time as a live job.

Short calls (list, delete, the room's transfers, a download) each run their own
``trio.run`` through ``backend.call``. An upload runs as a ``TransferJob``: a ``LinkThread``
that spools the browser's bytes to a temporary file (removed at the end, whatever happens),
admits itself with the session's membership token (``AUTH``) and runs
``syncrox.client.files.upload``, whose ``progress`` and ``on_event`` hooks fill bounded state
under a lock. The page renders ``snapshot()`` copies of it from a fragment; the thread never
touches Streamlit. Algorithms, codecs and emulation come from where ``syncrox`` defines them.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from backend import call
from backend.errors import BackendError, user_message
from backend.runtime import LinkThread
from syncrox.client.endpoints import Endpoints
from syncrox.client.files import FilesClient, TransferOptions, TransferResult, download, upload
from syncrox.netem import NetemConfig
from syncrox.protocol.files import FileEntry, TransferEntry
from syncrox.protocol.rudp.congestion import ALGORITHMS, DEFAULT_ALGORITHM
from syncrox.protocol.rudp.congestion.base import INITIAL_SSTHRESH
from syncrox.protocol.rudp.events import ROUTINE_KINDS, TransferEvent
from syncrox.protocol.rudp.packets import Codec

__all__ = [
    "ALGORITHMS_SHOWN", "CODECS", "CUSTOM", "DEFAULT_ALGORITHM", "PRESETS", "BackendError",
    "Fetched", "FileEntry", "JobView", "NetemConfig", "Point", "TransferEntry", "TransferJob",
    "UploadPlan",
    "admitted", "custom_netem", "delete_file", "download_bytes", "list_files", "room_transfers",
]  # fmt: skip

ALGORITHMS_SHOWN = tuple(ALGORITHMS)  # tahoe, reno, newreno, cubic: the core's own order
CODECS = tuple(codec.value for codec in Codec)
PRESET_SEED = 1  # fixed, so two runs (say Tahoe, then Reno) meet the very same losses
CUSTOM = "custom"
PRESETS: dict[str, NetemConfig | None] = {
    "none": None,
    "1 % loss": NetemConfig(loss=0.01, seed=PRESET_SEED),
    "5 % loss": NetemConfig(loss=0.05, seed=PRESET_SEED),
    "10 ms delay": NetemConfig(delay_ms=10.0, seed=PRESET_SEED),
    # Gilbert-Elliott: ~3 % of the time in bursts of ~3 datagrams that are all lost.
    "burst loss": NetemConfig(burst_enter=0.01, burst_exit=0.3, burst_loss=1.0, seed=PRESET_SEED),
    CUSTOM: None,  # built by custom_netem from the page's fields
}
MAX_POINTS = 5_000  # cwnd points a job keeps for its live chart (thinned beyond)
AUTH_TIMEOUT_S = 15.0
LIST_TIMEOUT_S = 15.0
# A download runs within a minute plus one second per MB (a slow emulated path or a busy
# machine still finishes; a dead server does not hang the button for ever).
DOWNLOAD_BASE_S = 60.0
DOWNLOAD_S_PER_MB = 1.0


def custom_netem(loss_percent: float, delay_ms: float, seed: int) -> NetemConfig:
    """The custom preset; ``NetemConfig`` checks the numbers (``BackendError`` if wrong)."""
    try:
        return NetemConfig(loss=loss_percent / 100.0, delay_ms=delay_ms, seed=seed)
    except Exception as exc:
        raise BackendError(user_message(exc)) from exc


# --------------------------------------------------------------------------- short calls


@asynccontextmanager
async def admitted(where: Endpoints, token: str) -> AsyncIterator[FilesClient]:
    """A File Control connection admitted with the session's token (the server decides
    the room): every call of the File Transfer and Analytics pages starts here."""
    async with FilesClient.connect(where.host, where.port("files_tcp")) as files:
        with trio.fail_after(AUTH_TIMEOUT_S):
            await files.auth(token)
        yield files


def list_files(token: str) -> list[FileEntry]:
    async def op(where: Endpoints) -> list[FileEntry]:
        async with admitted(where, token) as files:
            return await files.list_files()

    return call(op, timeout_s=LIST_TIMEOUT_S)


def delete_file(token: str, name: str) -> None:
    async def op(where: Endpoints) -> None:
        async with admitted(where, token) as files:
            await files.delete(name)

    call(op)


def room_transfers(token: str) -> list[TransferEntry]:
    """The room's transfers, newest first (the server lists at most 50)."""

    async def op(where: Endpoints) -> list[TransferEntry]:
        async with admitted(where, token) as files:
            return await files.transfers()

    return call(op, timeout_s=LIST_TIMEOUT_S)


def download_bytes(token: str, name: str, size: int) -> bytes:
    """Download ``name`` over reliable UDP into a temporary directory (always removed) and
    return its verified bytes (the page's "Download file"; "Save file" then hands them over)."""

    async def op(where: Endpoints) -> bytes:
        with tempfile.TemporaryDirectory(prefix="syncrox-download-") as folder:
            output = Path(folder) / "file"  # the .part beside it goes with the folder
            async with admitted(where, token) as files:
                result = await download(files, where.host, name, output, TransferOptions())
            if not result.ok:
                raise BackendError(f"the download of {name} failed: {_failure_text(result)}")
            return await trio.to_thread.run_sync(output.read_bytes)

    return call(op, timeout_s=DOWNLOAD_BASE_S + DOWNLOAD_S_PER_MB * size / 1e6)


@dataclass(frozen=True)
class Fetched:
    """A downloaded file a page holds for the browser's save (defined here, not in the
    page, whose classes are new objects on every run)."""

    name: str
    sha256: str
    data: bytes


def _failure_text(result: TransferResult) -> str:
    if result.failure is None:
        return "it did not complete"
    code, message = result.failure
    return f"{message} ({code})"


# --------------------------------------------------------------------------- the live job


@dataclass(frozen=True)
class UploadPlan:
    algo: str = DEFAULT_ALGORITHM
    codec: str = Codec.JSON.value
    preset: str = "none"
    netem: NetemConfig | None = None

    def options(self) -> TransferOptions:
        return TransferOptions(algo=self.algo, codec=Codec(self.codec), netem=self.netem)


@dataclass(frozen=True)
class Point:
    """One congestion event for the live chart; ``ssthresh`` is ``None`` while unset."""

    index: int  # the event's place in its transfer
    cwnd: float
    ssthresh: float | None
    kind: str


@dataclass(frozen=True)
class Outcome:
    """What the page shows when the upload is over."""

    ok: bool  # stored, its SHA-256 verified by the server
    size: int
    seconds: float
    goodput_bytes_per_s: float
    retransmissions: int
    timeouts: int
    final_cwnd: float | None
    srtt_ms: float | None
    transfer_id: str
    algo: str
    codec: str
    events: int
    failure: str | None  # why it failed, fit for the user
    report_failure: str | None  # the events could not be given to the server


@dataclass(frozen=True)
class JobView:
    name: str
    plan: UploadPlan
    status: str  # "running", "done", "failed", "cancelled"
    done: int
    total: int
    points: list[Point]
    outcome: Outcome | None
    problem: str | None  # why it ended without an outcome
    events_seen: int = 0
    newest_event_at: float | None = None  # Unix time the newest event was recorded

    @property
    def running(self) -> bool:
        return self.status == "running"


_ROUTINE = frozenset(kind.value for kind in ROUTINE_KINDS)


@dataclass
class _Points:
    """At most ``cap`` points of a whole transfer: past the cap routine events are thinned
    (every other one dropped, then every 4th kept ...), the telling ones (loss reactions,
    timeouts, start, end) all kept, so the chart still spans the transfer."""

    cap: int = MAX_POINTS
    stride: int = 1
    count: int = 0
    rows: list[Point] = field(default_factory=list)
    newest_at: float | None = None  # when the newest event was recorded (Unix time)

    def add(self, event: TransferEvent) -> None:
        index, kind = self.count, event.kind.value
        self.count += 1
        self.newest_at = time.time()  # the core records an event as it happens
        if kind in _ROUTINE and index % self.stride:
            return
        ssthresh = event.ssthresh if event.ssthresh < INITIAL_SSTHRESH else None
        self.rows.append(Point(index, event.cwnd, ssthresh, kind))
        if len(self.rows) > self.cap:
            self._thin()

    def _thin(self) -> None:
        routine = sum(1 for p in self.rows if p.kind in _ROUTINE)
        if routine >= self.cap // 2:
            self.stride *= 2
            self.rows = [
                p for p in self.rows if p.kind not in _ROUTINE or not p.index % self.stride
            ]
        if len(self.rows) > self.cap:  # telling events alone beyond the cap: the latest
            del self.rows[: len(self.rows) - self.cap]


class TransferJob:
    """One upload in its own thread; ``close()`` cancels it (never blocks)."""

    def __init__(
        self, where: Endpoints, token: str, name: str, data: bytes, plan: UploadPlan
    ) -> None:
        self.where, self.token, self.name, self.plan = where, token, name, plan
        self._data: bytes | None = data  # dropped once spooled
        self._lock = threading.Lock()
        self._status = "running"
        self._problem: str | None = None
        self._done, self._total = 0, len(data)
        self._points = _Points()
        self._outcome: Outcome | None = None
        self.thread = LinkThread(f"upload-{name}", self._main)

    def start(self) -> TransferJob:
        self.thread.start()
        return self

    def close(self) -> None:
        self.thread.close()

    def snapshot(self) -> JobView:
        with self._lock:
            status, problem = self._status, self._problem
            if status == "running" and not self.thread.alive and self.thread.failure:
                status, problem = "failed", self.thread.failure  # died outside _main's care
            return JobView(
                name=self.name, plan=self.plan, status=status, done=self._done,
                total=self._total, points=list(self._points.rows), outcome=self._outcome,
                events_seen=self._points.count, newest_event_at=self._points.newest_at,
                problem=problem,
            )  # fmt: skip

    # ------------------------------------------------------------------ link side

    async def _main(self) -> None:
        path: Path | None = None
        try:
            path = await trio.to_thread.run_sync(self._spool)
            async with admitted(self.where, self.token) as files:
                result = await upload(
                    files, self.where.host, path, self.plan.options(), name=self.name,
                    progress=self._progress, on_event=self._event,
                )  # fmt: skip
            self._finish(result)
        except trio.Cancelled:
            self._end("cancelled", "the upload was cancelled (the page left the room or closed)")
            raise
        except Exception as exc:
            self._end("failed", user_message(exc))
        finally:
            if path is not None:
                path.unlink(missing_ok=True)

    def _spool(self) -> Path:
        data, self._data = self._data or b"", None
        handle, name = tempfile.mkstemp(prefix="syncrox-upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
        except BaseException:
            os.unlink(name)
            raise
        return Path(name)

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self._done, self._total = done, total

    def _event(self, event: TransferEvent) -> None:
        with self._lock:
            self._points.add(event)

    def _finish(self, result: TransferResult) -> None:
        report = result.report_failure
        outcome = Outcome(
            ok=result.ok, size=result.size, seconds=result.seconds,
            goodput_bytes_per_s=result.goodput_bytes_per_s,
            retransmissions=result.retransmissions, timeouts=result.timeouts,
            final_cwnd=result.final_cwnd, srtt_ms=result.srtt_ms,
            transfer_id=result.transfer_id, algo=result.algo, codec=result.codec,
            events=len(result.events), failure=None if result.ok else _failure_text(result),
            report_failure=f"{report[1]} ({report[0]})" if report else None,
        )  # fmt: skip
        with self._lock:
            self._outcome = outcome
            self._status = "done" if result.ok else "failed"
            self._problem = outcome.failure

    def _end(self, status: str, problem: str) -> None:
        with self._lock:
            self._status, self._problem = status, problem
