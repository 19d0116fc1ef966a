"""Transfer events as the original CSV and as qlog-style JSON, for the analytics page.

CSV columns, in the original's order: ``ts, room, file, direction, seq, bytes, rtt_ms,
srtt_ms, rto_ms, cwnd, ssthresh, event, algo``. ``ts`` is Unix epoch seconds; ``seq`` is the
chunk the event concerns (the original wrote an event counter there: the row order already
gives that); empty cells mean "no value" (no RTT sample on this event, no SRTT yet).

qlog: one trace (draft-ietf-quic-qlog-main-schema's JSON form, version 0.3) whose events are
``recovery:metrics_updated`` (ACKs, duplicate ACKs, window changes),
``recovery:congestion_state_updated`` (fast retransmit, timeout, end of recovery) and
``syncrox:transfer`` (start, completion, failure), timed in milliseconds from the first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from syncrox.protocol.files import CSV_COLUMNS
from syncrox.protocol.rudp.events import TransferEvent
from syncrox.store.files import EventRow, TransferRecord

_METRICS = frozenset({"ACK", "DUP_ACK", "RWND_CHANGE", "WINDOW_PROBE", "TAIL_PROBE"})
_CONGESTION = frozenset({"FAST_RETRANSMIT", "TIMEOUT", "RECOVERY_EXIT"})


def event_row(event: TransferEvent, clock_offset_s: float) -> EventRow:
    """A core's event as a stored row. Cores keep Trio's clock, whose origin is arbitrary;
    ``clock_offset_s`` (``syncrox.net.transfer.wall_clock_offset_s``, taken in the same
    Trio run) turns it into Unix epoch seconds, the only time a row or export carries."""
    return EventRow(
        clock_offset_s + event.time_s, event.kind.value, event.seq, event.bytes, event.rtt_ms,
        event.srtt_ms, event.rttvar_ms, event.rto_ms, event.cwnd, event.ssthresh,
        event.bytes_in_flight, event.rwnd,
    )  # fmt: skip


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")


def to_csv(transfer: TransferRecord, rows: Sequence[EventRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            (
                f"{row.ts:.6f}", transfer.room, transfer.name, transfer.direction, row.seq,
                row.bytes, _cell(row.rtt_ms), _cell(row.srtt_ms), _cell(row.rto_ms),
                _cell(row.cwnd), _cell(row.ssthresh), row.event, transfer.algo,
            )
        )  # fmt: skip
    return out.getvalue().encode("utf-8")


def to_qlog(transfer: TransferRecord, rows: Sequence[EventRow], vantage: str) -> bytes:
    start = rows[0].ts if rows else transfer.started_at
    events = [_qlog_event(row, start) for row in rows]
    document = {
        "qlog_version": "0.3",
        "qlog_format": "JSON",
        "title": f"syncrox {transfer.direction} of {transfer.name}",
        "traces": [
            {
                "vantage_point": {"type": vantage},
                "common_fields": {
                    "reference_time": start * 1000.0,
                    "time_format": "relative",
                    "group_id": transfer.id,
                },
                "configuration": {"algo": transfer.algo, "codec": transfer.codec},
                "events": events,
            }
        ],
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _qlog_event(row: EventRow, start: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        "trigger": row.event.lower(),
        "seq": row.seq,
        "congestion_window": row.cwnd,
        "ssthresh": row.ssthresh,
        "bytes_in_flight": row.in_flight,
        "rto_ms": row.rto_ms,
        "rwnd": row.rwnd,
    }
    for key, value in (("latest_rtt", row.rtt_ms), ("smoothed_rtt", row.srtt_ms),
                       ("rtt_variance", row.rttvar_ms)):  # fmt: skip
        if value is not None:
            data[key] = value
    if row.event in _METRICS:
        name = "recovery:metrics_updated"
    elif row.event in _CONGESTION:
        name = "recovery:congestion_state_updated"
    else:
        name = "syncrox:transfer"
    return {"time": round((row.ts - start) * 1000.0, 3), "name": name, "data": data}
