"""The EVENTS report body: encoding, strict parsing, selection under the cap."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncrox.errors import RemoteProtocolError
from syncrox.protocol import files as proto
from syncrox.protocol.files_events import (
    MAX_REPORT_LINE_BYTES,
    MAX_REPORT_SPAN_S,
    encode_event_report,
    parse_event_report,
    select_for_report,
)
from syncrox.protocol.rudp.events import ROUTINE_KINDS, EventKind, TransferEvent

GOOD_LINE = b"0.25 ACK 3 4096 10.5 11 2.25 200 4 1048576 8192 510\n"


def event(t: float, kind: EventKind = EventKind.ACK, **changes: object) -> TransferEvent:
    fields: dict[str, object] = {
        "time_s": t, "kind": kind, "seq": 1, "bytes": 4096, "rtt_ms": 10.0, "srtt_ms": 10.0,
        "rttvar_ms": 5.0, "rto_ms": 200.0, "cwnd": 2.0, "ssthresh": 1048576.0,
        "bytes_in_flight": 4096, "rwnd": 512,
    }  # fmt: skip
    fields.update(changes)
    return TransferEvent(**fields)  # type: ignore[arg-type]


def test_a_line_reads_field_by_field() -> None:
    [parsed] = parse_event_report(GOOD_LINE, max_events=10)
    assert parsed == TransferEvent(
        0.25, EventKind.ACK, 3, 4096, 10.5, 11.0, 2.25, 200.0, 4.0, 1048576.0, 8192, 510
    )


def test_times_are_relative_to_the_ticket_and_absent_values_are_dashes() -> None:
    events = [event(100.5, rtt_ms=None, srtt_ms=None, rttvar_ms=None), event(101.0)]
    body = encode_event_report(events, origin_s=100.0)
    assert body.splitlines()[0] == b"0.5 ACK 1 4096 - - - 200 2 1048576 4096 512"
    parsed = parse_event_report(body, max_events=10)
    assert [e.time_s for e in parsed] == [0.5, 1.0]
    assert parsed[0].rtt_ms is None and parsed[1].rtt_ms == 10.0


def test_encoding_keeps_numbers_in_the_grammar() -> None:
    odd = event(
        99.0,  # before the ticket (clock rounding): clamped to 0, times never go back
        cwnd=float("nan"), ssthresh=1e30, rto_ms=-1.0, srtt_ms=1e-9, rwnd=-3,
    )  # fmt: skip
    [parsed] = parse_event_report(encode_event_report([odd], 100.0), max_events=1)
    assert parsed.time_s == 0 and parsed.cwnd == 0 and parsed.rto_ms == 0 and parsed.rwnd == 0
    assert parsed.ssthresh == math.nextafter(1e15, 0) and parsed.srtt_ms == 1e-9


@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e5, allow_nan=False),
            st.sampled_from(list(EventKind)),
            st.integers(0, 2**32),
            st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)),
            st.floats(0, 1e6, allow_nan=False),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_round_trip(rows: list[tuple[float, EventKind, int, float | None, float]]) -> None:
    events = [
        event(t, kind, seq=seq, rtt_ms=rtt, cwnd=cwnd)
        for t, kind, seq, rtt, cwnd in sorted(rows, key=lambda row: row[0])
    ]
    parsed = parse_event_report(encode_event_report(events, 0.0), max_events=30)
    assert [(e.kind, e.seq) for e in parsed] == [(e.kind, e.seq) for e in events]
    for before, after in zip(events, parsed, strict=True):
        assert after.time_s == pytest.approx(before.time_s, abs=1e-9)
        assert after.cwnd == pytest.approx(before.cwnd, abs=1e-9)
        assert (after.rtt_ms is None) == (before.rtt_ms is None)


@pytest.mark.parametrize(
    "body",
    [
        b"0.25 ACK 3 4096 10.5 11 2.25 200 4 1048576 8192 510",  # no final LF
        b"0.25 ACK 3 4096 10.5 11 2.25 200 4 1048576 8192\n",  # a field short
        b"0.25  ACK 3 4096 10.5 11 2.25 200 4 1048576 8192 510\n",  # two spaces
        b"0.25 NOPE 3 4096 10.5 11 2.25 200 4 1048576 8192 510\n",
        b"-1 ACK 3 4096 10.5 11 2.25 200 4 1048576 8192 510\n",
        b"1e3 ACK 3 4096 10.5 11 2.25 200 4 1048576 8192 510\n",
        b"nan ACK 3 4096 10.5 11 2.25 200 4 1048576 8192 510\n",
        b"0.25 ACK 3.5 4096 10.5 11 2.25 200 4 1048576 8192 510\n",
        b"0.25 ACK 3 4096 10.5 11 2.25 inf 4 1048576 8192 510\n",
        b"0.25 ACK 3 4096 - 11 2.25 - 4 1048576 8192 510\n",  # rto is never absent
        b"0.25 ACK 1234567890123456 4096 10.5 11 2.25 200 4 1048576 8192 510\n",
        b"\xff ACK 3 4096 10.5 11 2.25 200 4 1048576 8192 510\n",
        b"700000 ACK 3 4096 10.5 11 2.25 200 4 1048576 8192 510\n",  # beyond a week
        GOOD_LINE + GOOD_LINE.replace(b"0.25", b"0.125"),  # time goes back
        GOOD_LINE.replace(b"ACK", b"ACK" + b" " * 300),
        b"\n",
        b"",  # a report holds at least one event
        GOOD_LINE.replace(b"10.5", b"999999999999999.999999999"),  # rounds up to 1e15
    ],
)
def test_malformed_reports_are_refused(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as refused:
        parse_event_report(body, max_events=10)
    assert refused.value.code == "BAD_ARGUMENT"


def test_more_events_than_the_cap_are_refused() -> None:
    assert parse_event_report(GOOD_LINE * 3, max_events=3)
    with pytest.raises(RemoteProtocolError) as refused:
        parse_event_report(GOOD_LINE * 4, max_events=3)
    assert refused.value.code == "TOO_LARGE"


def test_the_week_limit_is_inclusive() -> None:
    line = GOOD_LINE.replace(b"0.25", str(int(MAX_REPORT_SPAN_S)).encode())
    assert parse_event_report(line, max_events=1)[0].time_s == MAX_REPORT_SPAN_S


def test_selection_keeps_telling_events_and_the_earliest_routine_ones() -> None:
    kinds = [EventKind.START] + [EventKind.ACK] * 10 + [EventKind.TIMEOUT, EventKind.COMPLETE]
    events = [event(float(i), kind) for i, kind in enumerate(kinds)]
    chosen = select_for_report(events, 6)
    assert [e.kind for e in chosen] == [EventKind.START] + [EventKind.ACK] * 3 + [
        EventKind.TIMEOUT, EventKind.COMPLETE,
    ]  # fmt: skip
    assert select_for_report(events, 100) == events
    only_telling = select_for_report(events, 2)
    assert len(only_telling) == 2 and all(e.kind not in ROUTINE_KINDS for e in only_telling)


def test_the_command_line() -> None:
    session = "ab" * 16
    assert proto.parse_files_command(f"EVENTS {session} 120", max_file_bytes=10) == (
        proto.ReportEvents(session, 120)
    )
    for bad in (
        f"EVENTS {session}", f"EVENTS {session} -1", "EVENTS xyz 10", f"EVENTS {session} 12x",
        f"EVENTS {session.upper()} 10", f"EVENTS {session} 1234567890123456", "EVENTS",
        f"EVENTS {session} 10 extra",
    ):  # fmt: skip
        with pytest.raises(RemoteProtocolError) as refused:
            proto.parse_files_command(bad, max_file_bytes=10)
        # A body of unknown length follows: the connection must close.
        assert refused.value.code == "BAD_ARGUMENT" and refused.value.fatal
    assert proto.parse_events_reply(f"OK EVENTS {session} 7") == (session, 7)
    with pytest.raises(RemoteProtocolError):
        proto.parse_events_reply(f"OK DELETED {session} 7")


def test_the_longest_line_the_encoder_can_write_is_taken() -> None:
    widest = event(
        MAX_REPORT_SPAN_S - 1e-9, EventKind.FAST_RETRANSMIT, seq=10**20, bytes=10**20,
        rtt_ms=1e15 - 0.123456789, srtt_ms=1e20, rttvar_ms=1e20, rto_ms=1e20, cwnd=1e20,
        ssthresh=1e20, bytes_in_flight=10**20, rwnd=10**20,
    )  # fmt: skip
    body = encode_event_report([widest], 0.0)
    assert len(body) - 1 <= MAX_REPORT_LINE_BYTES
    [parsed] = parse_event_report(body, max_events=1)
    assert parsed.seq == parsed.rwnd == 999_999_999_999_999


@pytest.mark.parametrize("value", [b"999999999999999.5", b"999999999999999.8", b"0.1"])
def test_any_decimal_the_grammar_takes_reads_back_the_same(value: bytes) -> None:
    line = GOOD_LINE.replace(b" 10.5 ", b" " + value + b" ")
    [parsed] = parse_event_report(line, max_events=1)
    [again] = parse_event_report(encode_event_report([parsed], 0.0), max_events=1)
    assert again == parsed
