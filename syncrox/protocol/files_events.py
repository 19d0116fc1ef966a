"""The body of ``EVENTS``: an uploading client's congestion events, reported to the server.

For an upload the client is the data sender, so only it sees its congestion state; after the
transfer it reports its events on File Control so that ``METRICS`` (and the analytics page)
has every transfer's, not only downloads'. Sans-IO: text in, events out; the parser raises
only ``RemoteProtocolError``.

One line per event, ``LF`` terminated, fields separated by exactly one space::

    <t> <event> <seq> <bytes> <rtt_ms> <srtt_ms> <rttvar_ms> <rto_ms> <cwnd> <ssthresh>
        <in_flight> <rwnd>

``<t>`` is seconds since the client received the ticket (the ``SESSION`` reply), so the
server can place the events on its own clock (its ticket time plus ``<t>``) whatever the
client's wall clock says. Times never decrease from one line to the next. Numbers are plain
decimals (``123`` or ``123.456``: at most 15 digits before the point and 9 after, no sign,
no exponent); ``<rtt_ms>``, ``<srtt_ms>`` and ``<rttvar_ms>`` may be ``-`` (no value);
``<seq>``, ``<bytes>``, ``<in_flight>`` and ``<rwnd>`` are whole numbers. ``<event>`` is an
event kind name (``ACK``, ``TIMEOUT``, ...). Byte-level description: docs/PROTOCOL.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from syncrox.errors import BAD_ARGUMENT, TOO_LARGE, RemoteProtocolError
from syncrox.protocol.rudp.events import ROUTINE_KINDS, EventKind, TransferEvent

MAX_REPORT_LINE_BYTES = 256  # the longest line the grammar allows is 252 bytes
MAX_REPORT_SPAN_S = 7 * 24 * 3600.0  # no transfer's events span more than a week
MAX_WHOLE = 999_999_999_999_999  # 15 digits
MAX_DECIMAL = math.nextafter(1e15, 0.0)  # the largest float with 15 digits before the point
_FIELDS = 12
_DECIMAL_PATTERN = rb"[0-9]{1,15}(?:\.[0-9]{1,9})?"
_WHOLE_PATTERN = rb"[0-9]{1,15}"
_DECIMAL = re.compile(_DECIMAL_PATTERN)
_WHOLE = re.compile(_WHOLE_PATTERN)
_LINE = re.compile(
    rb" ".join(
        b"(" + field + b")"
        for field in (
            _DECIMAL_PATTERN, rb"[A-Z_]{1,32}", _WHOLE_PATTERN, _WHOLE_PATTERN,
            *[rb"-|" + _DECIMAL_PATTERN] * 3, *[_DECIMAL_PATTERN] * 3, _WHOLE_PATTERN,
            _WHOLE_PATTERN,
        )
    )
)  # fmt: skip
_KINDS = {kind.value.encode(): kind for kind in EventKind}


def max_report_bytes(max_events: int) -> int:
    return max_events * MAX_REPORT_LINE_BYTES


def select_for_report(events: Sequence[TransferEvent], limit: int) -> list[TransferEvent]:
    """At most ``limit`` events, in order: every telling one (fast retransmits, timeouts,
    recovery, probes, start and end) and as many routine ones (ACKs, duplicate ACKs,
    window updates) as fit, earliest first. (Should the telling ones alone be more than
    ``limit``, the earliest of them.)"""
    telling = sum(1 for event in events if event.kind not in ROUTINE_KINDS)
    routine_room = max(limit - telling, 0)
    chosen: list[TransferEvent] = []
    for event in events:
        if event.kind in ROUTINE_KINDS:
            if routine_room == 0:
                continue
            routine_room -= 1
        chosen.append(event)
        if len(chosen) == limit:
            break
    return chosen


def encode_event_report(events: Sequence[TransferEvent], origin_s: float) -> bytes:
    """The report body; ``origin_s`` is when the ticket arrived, on the events' clock."""
    lines = []
    last = 0.0
    for event in events:
        last = min(max(event.time_s - origin_s, last), MAX_REPORT_SPAN_S)
        fields = (
            _number(last), event.kind.value, _count(event.seq), _count(event.bytes),
            _optional(event.rtt_ms), _optional(event.srtt_ms), _optional(event.rttvar_ms),
            _number(event.rto_ms), _number(event.cwnd), _number(event.ssthresh),
            _count(event.bytes_in_flight), _count(event.rwnd),
        )  # fmt: skip
        lines.append(" ".join(fields) + "\n")
    return "".join(lines).encode("ascii")


def parse_event_report(body: bytes, *, max_events: int) -> list[TransferEvent]:
    """The events of a report, each timed in seconds since the ticket (``time_s``)."""
    if not body:
        raise RemoteProtocolError(BAD_ARGUMENT, "an event report holds at least one event")
    if not body.endswith(b"\n"):
        raise RemoteProtocolError(BAD_ARGUMENT, "an event report ends with LF")
    if body.count(b"\n") > max_events:  # before splitting: lines cost memory
        raise RemoteProtocolError(TOO_LARGE, f"at most {max_events} events per transfer")
    lines = body[:-1].split(b"\n")
    events: list[TransferEvent] = []
    last = 0.0
    for number, line in enumerate(lines, start=1):
        # One compiled pattern checks a well-formed line whole; only a line it refuses
        # is taken apart field by field, to say what is wrong with it.
        match = _LINE.fullmatch(line)
        event = _parse_fields(match.groups()) if match else None
        if event is None:
            event = _parse_line(line, number)  # raises
        if event.time_s < last:
            raise RemoteProtocolError(BAD_ARGUMENT, f"event line {number}: time goes back")
        last = event.time_s
        events.append(event)
    return events


def _parse_fields(fields: tuple[bytes, ...]) -> TransferEvent | None:
    """The event of a line ``_LINE`` matched, or ``None`` if a value is out of range (a
    decimal that rounds up to 10^15, a time beyond a week) or the kind is unknown."""
    t, kind, seq, size, rtt, srtt, rttvar, rto, cwnd, ssthresh, in_flight, rwnd = fields
    kind_value = _KINDS.get(kind)
    time_s, rto_ms, cwnd_v, ssthresh_v = float(t), float(rto), float(cwnd), float(ssthresh)
    rtt_ms = None if rtt == b"-" else float(rtt)
    srtt_ms = None if srtt == b"-" else float(srtt)
    rttvar_ms = None if rttvar == b"-" else float(rttvar)
    highest = max(rto_ms, cwnd_v, ssthresh_v, rtt_ms or 0.0, srtt_ms or 0.0, rttvar_ms or 0.0)
    if kind_value is None or time_s > MAX_REPORT_SPAN_S or highest > MAX_DECIMAL:
        return None
    return TransferEvent(
        time_s, kind_value, int(seq), int(size), rtt_ms, srtt_ms, rttvar_ms, rto_ms, cwnd_v,
        ssthresh_v, int(in_flight), int(rwnd),
    )  # fmt: skip


def _parse_line(line: bytes, number: int) -> TransferEvent:
    if len(line) > MAX_REPORT_LINE_BYTES:
        raise RemoteProtocolError(BAD_ARGUMENT, f"event line {number}: too long")
    fields = line.split(b" ")
    if len(fields) != _FIELDS:
        raise RemoteProtocolError(BAD_ARGUMENT, f"event line {number}: {_FIELDS} fields expected")
    t, kind, seq, size, rtt, srtt, rttvar, rto, cwnd, ssthresh, in_flight, rwnd = fields
    if kind not in _KINDS:
        raise RemoteProtocolError(BAD_ARGUMENT, f"event line {number}: unknown event kind")
    try:
        time_s = _decimal(t)
        if time_s > MAX_REPORT_SPAN_S:
            raise ValueError("too late")
        return TransferEvent(
            time_s, _KINDS[kind], _whole(seq), _whole(size), _optional_decimal(rtt),
            _optional_decimal(srtt), _optional_decimal(rttvar), _decimal(rto), _decimal(cwnd),
            _decimal(ssthresh), _whole(in_flight), _whole(rwnd),
        )  # fmt: skip
    except ValueError:
        raise RemoteProtocolError(
            BAD_ARGUMENT, f"event line {number}: a field is not a plain decimal in range"
        ) from None


def _decimal(field: bytes) -> float:
    if _DECIMAL.fullmatch(field) is None:
        raise ValueError(field)
    value = float(field)
    if value > MAX_DECIMAL:  # 999999999999999.99... rounds up to 1e15: 16 digits
        raise ValueError(field)
    return value


def _whole(field: bytes) -> int:
    if _WHOLE.fullmatch(field) is None:
        raise ValueError(field)
    return int(field)


def _optional_decimal(field: bytes) -> float | None:
    return None if field == b"-" else _decimal(field)


def _number(value: float) -> str:
    # Within the grammar whatever the core reported (no sign, no exponent, 15 digits).
    # Nine decimals: what the parser reads back is the same float (a fuzz invariant).
    value = min(max(value, 0.0), MAX_DECIMAL) if math.isfinite(value) else 0.0
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def _count(value: int) -> str:
    return str(min(max(value, 0), MAX_WHOLE))


def _optional(value: float | None) -> str:
    return "-" if value is None else _number(value)
