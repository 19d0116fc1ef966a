"""Congestion analytics of one transfer, from its ``METRICS ... csv`` body: pure, sans-IO.

``parse_metrics_csv`` turns a body into a typed ``Trace`` (strict and bounded: anything the
documented format does not allow raises ``RemoteProtocolError``). The rest derives what the
analytics page draws and tabulates, each series on the transfer's own axes (the original
overlaid runs on one counter and mislabelled its axes):

- ``rtt_points``: RTT samples by the chunk they concern (``seq``), with SRTT and the RTO;
- ``cwnd_points``: cwnd and ssthresh after each event, by the event's index (1-based) within
  its own transfer; ``recovery_spans`` where fast recovery ran;
- ``rounds``: transmission rounds. A round ends when the window outstanding at its start
  is acknowledged (the cumulative ACK reaches the ACK at its start + ⌊cwnd⌋), when the
  sender reacts to a loss (fast retransmit or timeout: the textbook round model's "a loss is
  known at the end of its round"), or at the transfer's end. Where the trace has no ACK
  left (beyond the server's event cap only the rarer kinds are kept), a round is one SRTT
  of elapsed time instead;
- ``stats``: goodput against the Mathis bound, with the loss-event rate p estimated as
  (fast retransmits + timeouts) / chunks acknowledged.

Events are the *sending* side's (docs/PROTOCOL.md, "Metrics"): the server's for downloads,
the uploading client's report for uploads; both are read the same way.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from syncrox.config import FilesConfig
from syncrox.errors import BAD_ARGUMENT, RemoteProtocolError
from syncrox.protocol.files import CSV_COLUMNS
from syncrox.protocol.rudp.events import EventKind

# The server keeps at most twice its per-transfer event limit (routine kinds dropped
# beyond it); a body with more rows is not one it wrote.
MAX_ROWS = 2 * FilesConfig().max_events_per_transfer
MAX_LINE_CHARS = 2048  # a row's longest fields: a 255-byte name (quoted, doubled quotes)
# Every algorithm starts with ssthresh = 2^20 chunks: "not set yet", never drawn.
UNSET_SSTHRESH = float(1 << 20)
# Mathis et al. (1997): window ≈ C/√p chunks, C = √(3/2) ≈ 1.22 for periodic losses and an
# ACK per chunk (the textbook figure). Under random losses Reno's rules earn about C = 1
# (bench/_round_model.py, docs/BENCHMARKS.md), which is what the benchmark holds us to.
MATHIS_C = math.sqrt(1.5)
LOSS_REACTIONS = frozenset({EventKind.FAST_RETRANSMIT, EventKind.TIMEOUT})
TERMINAL = frozenset({EventKind.COMPLETE, EventKind.FAILED})
# The events whose seq is a cumulative ACK that moved: the end of fast recovery reports
# its ACK as RECOVERY_EXIT, not as ACK.
ACK_ADVANCES = frozenset({EventKind.ACK, EventKind.RECOVERY_EXIT})

_INT = re.compile(r"\d{1,15}")
_DECIMAL = re.compile(r"\d{1,15}(?:\.\d{1,9})?")
_ROOM = re.compile(r"\d{4}")
_DIRECTIONS = frozenset({"upload", "download"})
_WORD = re.compile(r"[a-z0-9_-]{1,32}")
_KINDS = {kind.value: kind for kind in EventKind}


@dataclasses.dataclass(frozen=True, slots=True)
class MetricRow:
    ts: float  # Unix epoch seconds
    seq: int  # the chunk the event concerns (the cumulative ACK on ACK and DUP_ACK rows)
    bytes: int  # bytes newly acknowledged
    rtt_ms: float | None  # the RTT sample this event produced
    srtt_ms: float | None
    rto_ms: float
    cwnd: float  # chunks, after the event
    ssthresh: float  # chunks, after the event
    kind: EventKind


@dataclasses.dataclass(frozen=True, slots=True)
class Trace:
    """One transfer's events; ``room``/``file``/... are empty when it has none yet (an
    upload whose client has not reported: the body is the header alone)."""

    room: str
    file: str
    direction: str
    algo: str
    rows: tuple[MetricRow, ...]


# ------------------------------------------------------------------------------ parsing


def parse_metrics_csv(body: bytes) -> Trace:
    """A ``METRICS csv`` body as a ``Trace``; ``RemoteProtocolError`` if it is not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"metrics are not UTF-8 (byte {exc.start})") from exc
    lines = text.split("\n")
    if lines[-1] != "":
        raise _bad("metrics end with a line feed")
    lines.pop()
    if len(lines) - 1 > MAX_ROWS:
        raise _bad(f"more than {MAX_ROWS} events")
    if any(len(line) > MAX_LINE_CHARS for line in lines):
        raise _bad(f"a metrics line is longer than {MAX_LINE_CHARS} characters")
    try:
        records = list(csv.reader(lines, strict=True))
    except csv.Error as exc:
        raise _bad(f"metrics are not CSV: {exc}") from exc
    if not records or tuple(records[0]) != CSV_COLUMNS:
        raise _bad("the metrics header is not the documented one")
    rows = [_row(number, record) for number, record in enumerate(records[1:], start=2)]
    meta = [*records[1][1:4], records[1][12]] if rows else ["", "", "", ""]
    for number, record in enumerate(records[1:], start=2):
        if [*record[1:4], record[12]] != meta:
            raise _bad(f"metrics line {number}: another transfer's room, file or algorithm")
    if any(later.ts < earlier.ts for earlier, later in itertools.pairwise(rows)):
        raise _bad("metrics events go back in time")
    return Trace(meta[0], meta[1], meta[2], meta[3], tuple(rows))


def _row(number: int, record: list[str]) -> MetricRow:
    if len(record) != len(CSV_COLUMNS):
        raise _bad(f"metrics line {number}: {len(CSV_COLUMNS)} fields expected")
    ts, room, file, direction, seq, acked, rtt, srtt, rto, cwnd, ssthresh, event, algo = record
    if not _ROOM.fullmatch(room) or not file or direction not in _DIRECTIONS:
        raise _bad(f"metrics line {number}: bad room, file or direction")
    if not _WORD.fullmatch(algo) or event not in _KINDS:
        raise _bad(f"metrics line {number}: unknown algorithm or event kind")
    return MetricRow(
        _decimal(ts, number), _integer(seq, number), _integer(acked, number),
        _optional(rtt, number), _optional(srtt, number), _decimal(rto, number),
        _decimal(cwnd, number), _decimal(ssthresh, number), _KINDS[event],
    )  # fmt: skip


def _integer(text: str, number: int) -> int:
    if not _INT.fullmatch(text):
        raise _bad(f"metrics line {number}: {text[:20]!r} is not a whole number")
    return int(text)


def _decimal(text: str, number: int) -> float:
    # float() alone would take "nan", "1e9", " 1" and "1_0": the format has none of them.
    if not _DECIMAL.fullmatch(text):
        raise _bad(f"metrics line {number}: {text[:20]!r} is not a plain decimal")
    return float(text)


def _optional(text: str, number: int) -> float | None:
    return None if text == "" else _decimal(text, number)


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(BAD_ARGUMENT, message)


# ------------------------------------------------------------------------------- series


@dataclasses.dataclass(frozen=True, slots=True)
class RttPoint:
    seq: int
    rtt_ms: float
    srtt_ms: float | None
    rto_ms: float


@dataclasses.dataclass(frozen=True, slots=True)
class CwndPoint:
    index: int  # 1-based, within its own transfer
    elapsed_ms: float  # since the transfer's first event
    seq: int
    cwnd: float
    ssthresh: float | None  # None while unset (2^20)
    kind: EventKind


@dataclasses.dataclass(frozen=True, slots=True)
class Mark:
    """A notable event (a loss reaction, a probe, recovery's end) for the charts' markers."""

    index: int  # as CwndPoint.index
    seq: int
    cwnd: float
    kind: EventKind


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    first: int  # event indexes, inclusive
    last: int


def rtt_points(trace: Trace) -> list[RttPoint]:
    return [
        RttPoint(row.seq, row.rtt_ms, row.srtt_ms, row.rto_ms)
        for row in trace.rows
        if row.rtt_ms is not None
    ]


def ssthresh_of(value: float) -> float | None:
    return None if value >= UNSET_SSTHRESH else value


def cwnd_points(trace: Trace) -> list[CwndPoint]:
    origin = trace.rows[0].ts if trace.rows else 0.0
    return [
        CwndPoint(index, (row.ts - origin) * 1000.0, row.seq, row.cwnd,
                  ssthresh_of(row.ssthresh), row.kind)
        for index, row in enumerate(trace.rows, start=1)
    ]  # fmt: skip


def marks(trace: Trace, kinds: frozenset[EventKind]) -> list[Mark]:
    return [
        Mark(index, row.seq, row.cwnd, row.kind)
        for index, row in enumerate(trace.rows, start=1)
        if row.kind in kinds
    ]


def recovery_spans(trace: Trace) -> list[Span]:
    """From a fast retransmit to the ``RECOVERY_EXIT`` that ends it. Tahoe has no fast
    recovery (nothing to shade); a timeout ends any recovery without an exit event."""
    spans: list[Span] = []
    opened: int | None = None
    for index, row in enumerate(trace.rows, start=1):
        if row.kind is EventKind.FAST_RETRANSMIT and opened is None:
            opened = index
        elif row.kind is EventKind.RECOVERY_EXIT and opened is not None:
            spans.append(Span(opened, index))
            opened = None
        elif row.kind is EventKind.TIMEOUT:
            opened = None
    return spans


# ------------------------------------------------------------------------------- rounds


@dataclasses.dataclass(frozen=True, slots=True)
class Round:
    number: int  # 1-based, within its own transfer
    first: int  # event indexes (1-based), inclusive
    last: int
    cwnd: float  # the window in force when the round began
    ssthresh: float | None
    acked: int  # chunks the cumulative ACK advanced by during the round
    seconds: float
    by_time: bool  # cut by elapsed SRTT (no ACK left in the trace), not by ACKs


def rounds(trace: Trace) -> list[Round]:
    rows = trace.rows
    last_ack = max((i for i, row in enumerate(rows) if row.kind in ACK_ADVANCES), default=-1)
    ack = _initial_ack(rows) if rows else 0
    found: list[Round] = []
    start = 0
    while start < len(rows):
        if rows[start].kind in TERMINAL and found:
            # COMPLETE right after the ACK that closed a round is part of it, not a round.
            found[-1] = dataclasses.replace(found[-1], last=len(rows))
            break
        state = rows[start - 1] if start else rows[0]  # what is in force as the round begins
        began = state.ts  # the previous round's end
        target = ack + max(1, math.floor(state.cwnd))
        end, ack_end, by_time = _round_end(
            rows, start, began=began, ack=ack, target=target, last_ack=last_ack
        )
        found.append(
            Round(len(found) + 1, start + 1, end + 1, state.cwnd, ssthresh_of(state.ssthresh),
                  ack_end - ack, rows[end].ts - began, by_time)
        )  # fmt: skip
        ack, start = ack_end, end + 1
    return found


def _initial_ack(rows: Sequence[MetricRow]) -> int:
    # START names the first chunk to send (after any resumed prefix): the ACK is one below.
    first = rows[0]
    return max(first.seq - 1, 0) if first.kind is EventKind.START else first.seq


def _round_end(
    rows: Sequence[MetricRow], start: int, *, began: float, ack: int, target: int, last_ack: int
) -> tuple[int, int, bool]:
    """Index of the round's last event, the cumulative ACK then, and whether time cut it."""
    srtt_s = _srtt_before(rows, start)
    for i in range(start, len(rows)):
        row = rows[i]
        if row.kind in ACK_ADVANCES:
            ack = max(ack, row.seq)
            if ack >= target:
                return i, ack, False
        if row.kind in LOSS_REACTIONS or row.kind in TERMINAL:
            return i, ack, False
        following = rows[i + 1].ts if i + 1 < len(rows) else None
        if i > last_ack and srtt_s and following is not None and following - began >= srtt_s:
            return i, ack, True  # no ACK left to tell rounds apart: one SRTT is one round
    return len(rows) - 1, ack, False


def _srtt_before(rows: Sequence[MetricRow], start: int) -> float | None:
    for row in reversed(rows[: start + 1]):
        if row.srtt_ms is not None:
            return row.srtt_ms / 1000.0
    return None


# -------------------------------------------------------------------------------- stats


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    events: int
    seconds: float  # first event to last
    bytes_acked: int
    chunks_acked: int
    goodput_bytes_per_s: float
    fast_retransmits: int
    timeouts: int
    tail_probes: int
    loss_events: int  # congestion reactions: fast retransmits + timeouts
    loss_rate: float | None  # p = loss events / chunks acknowledged
    rounds: int
    mean_window: float | None  # cwnd at the start of each round, averaged over rounds
    max_cwnd: float | None
    final_cwnd: float | None
    final_srtt_ms: float | None
    mean_rtt_ms: float | None  # over the RTT samples: the RTT of the Mathis bound
    mathis_window: float | None  # C/√p chunks
    mathis_goodput_bytes_per_s: float | None  # chunk size x C/√p per mean RTT

    @property
    def goodput_x_mathis(self) -> float | None:
        bound = self.mathis_goodput_bytes_per_s
        return self.goodput_bytes_per_s / bound if bound else None


def mathis_window(loss: float, constant: float = MATHIS_C) -> float:
    """Mathis et al.'s steady-state window, in chunks, at loss-event rate ``loss``."""
    if not 0.0 < loss <= 1.0:
        raise ValueError("a loss rate is in (0, 1]")
    return constant / math.sqrt(loss)


def mathis_goodput(
    chunk_bytes: float, rtt_s: float, loss: float, constant: float = MATHIS_C
) -> float:
    """The Mathis bound in bytes per second: ``chunk_bytes x C / (RTT x √p)``."""
    if rtt_s <= 0.0:
        raise ValueError("an RTT is positive")
    return chunk_bytes * mathis_window(loss, constant) / rtt_s


def stats(trace: Trace) -> Stats:
    rows = trace.rows
    counts = dict.fromkeys(EventKind, 0)
    for row in rows:
        counts[row.kind] += 1
    final_ack = max((row.seq for row in rows if row.kind in ACK_ADVANCES), default=None)
    chunks = final_ack - _initial_ack(rows) if final_ack is not None else 0
    acked = sum(row.bytes for row in rows)
    seconds = rows[-1].ts - rows[0].ts if rows else 0.0
    losses = counts[EventKind.FAST_RETRANSMIT] + counts[EventKind.TIMEOUT]
    loss_rate = losses / chunks if losses and chunks > 0 else None
    samples = [row.rtt_ms for row in rows if row.rtt_ms is not None]
    mean_rtt = sum(samples) / len(samples) if samples else None
    found = rounds(trace)
    bound = None
    if loss_rate is not None and mean_rtt and chunks:
        bound = mathis_goodput(acked / chunks, mean_rtt / 1000.0, min(loss_rate, 1.0))
    return Stats(
        events=len(rows), seconds=seconds, bytes_acked=acked, chunks_acked=chunks,
        goodput_bytes_per_s=acked / seconds if seconds > 0 else 0.0,
        fast_retransmits=counts[EventKind.FAST_RETRANSMIT], timeouts=counts[EventKind.TIMEOUT],
        tail_probes=counts[EventKind.TAIL_PROBE], loss_events=losses, loss_rate=loss_rate,
        rounds=len(found),
        mean_window=sum(r.cwnd for r in found) / len(found) if found else None,
        max_cwnd=max((row.cwnd for row in rows), default=None),
        final_cwnd=rows[-1].cwnd if rows else None,
        final_srtt_ms=next((r.srtt_ms for r in reversed(rows) if r.srtt_ms is not None), None),
        mean_rtt_ms=mean_rtt,
        mathis_window=mathis_window(min(loss_rate, 1.0)) if loss_rate is not None else None,
        mathis_goodput_bytes_per_s=bound,
    )  # fmt: skip


# ------------------------------------------------------------------------------ display

T = TypeVar("T")


def thin(points: Sequence[T], limit: int, keep: Callable[[T], bool]) -> list[T]:
    """At most about ``limit`` points for a chart: every k-th one, the first and last, and
    every point ``keep`` names (loss reactions: thinning must never hide one)."""
    if limit < 1:
        raise ValueError("a limit is at least 1")
    if len(points) <= limit:
        return list(points)
    stride = math.ceil(len(points) / limit)
    last = len(points) - 1
    return [p for i, p in enumerate(points) if i % stride == 0 or i == last or keep(p)]
