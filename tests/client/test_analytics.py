"""Congestion analytics from a METRICS CSV: strict parsing, and the rounds and statistics
of a Tahoe and a Reno trace built by hand (every figure below is worked out in comments)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from syncrox.client import analytics
from syncrox.client.analytics import Round, Span, parse_metrics_csv
from syncrox.errors import RemoteProtocolError
from syncrox.protocol.files import CSV_COLUMNS
from syncrox.protocol.rudp.events import EventKind
from syncrox.services.files_export import to_csv
from syncrox.store.files import EventRow, TransferRecord

T0 = 1796000000.0
UNSET = 1048576
HEADER = ",".join(CSV_COLUMNS)

# ts (s after T0), seq, bytes, rtt, srtt, rto, cwnd, ssthresh, event. Chunks of 1000 bytes,
# a 10 ms path. Slow start 1, 2, 4; a loss found by three duplicates (chunk 5);
# Tahoe: cwnd 1, ssthresh 2; then a timeout.
TAHOE = [
    (0.000, 1, 0, "", "", 1000, 1, UNSET, "START"),
    (0.010, 1, 1000, 10, 10, 200, 2, UNSET, "ACK"),  # round 1 ends: ACK 0 + 1
    (0.020, 3, 2000, 10, 10, 200, 4, UNSET, "ACK"),  # round 2 ends: ACK 1 + 2
    (0.030, 4, 1000, 10, 10, 200, 5, UNSET, "ACK"),  # round 3 wants ACK 3 + 4 = 7
    (0.031, 4, 0, 10, 10, 200, 5, UNSET, "DUP_ACK"),
    (0.032, 4, 0, 10, 10, 200, 5, UNSET, "DUP_ACK"),
    (0.033, 4, 0, 10, 10, 200, 5, UNSET, "DUP_ACK"),
    (0.033, 5, 0, "", 10, 200, 1, 2, "FAST_RETRANSMIT"),  # round 3 ends: a loss
    (0.043, 8, 4000, "", 10, 200, 2, 2, "ACK"),  # round 4 (cwnd 1) ends: ACK 4 + 1
    (0.053, 10, 2000, 10, 10, 200, 3, 2, "ACK"),  # round 5 (cwnd 2) ends: ACK 8 + 2
    (0.263, 10, 0, "", 10, 400, 1, 2, "TIMEOUT"),  # round 6 (cwnd 3) ends: a timeout
    (0.273, 12, 2000, "", 10, 400, 2, 2, "ACK"),  # round 7 (cwnd 1) ends: ACK 10 + 1
    (0.273, 12, 0, "", 10, 400, 2, 2, "COMPLETE"),  # part of round 7
]
# The same start and loss; Reno: ssthresh 2, cwnd 2 + 3 = 5, inflated by a duplicate, and
# the ACK that ends recovery reported as RECOVERY_EXIT (as the sender does).
RENO = [
    (0.000, 1, 0, "", "", 1000, 1, UNSET, "START"),
    (0.010, 1, 1000, 10, 10, 200, 2, UNSET, "ACK"),
    (0.020, 3, 2000, 10, 10, 200, 4, UNSET, "ACK"),
    (0.030, 4, 1000, 10, 10, 200, 5, UNSET, "ACK"),
    (0.031, 4, 0, 10, 10, 200, 5, UNSET, "DUP_ACK"),
    (0.032, 4, 0, 10, 10, 200, 5, UNSET, "DUP_ACK"),
    (0.033, 4, 0, 10, 10, 200, 5, UNSET, "DUP_ACK"),
    (0.033, 5, 0, "", 10, 200, 5, 2, "FAST_RETRANSMIT"),  # round 3 ends
    (0.034, 4, 0, 10, 10, 200, 6, 2, "DUP_ACK"),  # round 4 wants ACK 4 + 5 = 9
    (0.043, 8, 4000, "", 10, 200, 2, 2, "RECOVERY_EXIT"),
    (0.044, 9, 1000, 10, 10, 200, 2.5, 2, "ACK"),  # round 4 ends
    (0.054, 11, 2000, 10, 10, 200, 3, 2, "ACK"),  # round 5 (cwnd 2.5: 2 chunks) ends
    (0.064, 12, 1000, 10, 10, 200, 3.333, 2, "ACK"),  # round 6 (cwnd 3) wants ACK 14
    (0.064, 12, 0, "", 10, 200, 3.333, 2, "COMPLETE"),  # ... and ends with the transfer
]


def body(rows: Sequence[tuple[object, ...]], algo: str, *, file: str = "lecture, 2.bin") -> bytes:
    lines = [HEADER]
    for ts, *middle, event in rows:
        fields = [f"{T0 + float(str(ts)):.6f}", "4821", f'"{file}"', "upload"]
        fields += [str(v) for v in middle] + [str(event), algo]
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode()


def test_a_trace_reads_back_typed() -> None:
    trace = parse_metrics_csv(body(TAHOE, "tahoe"))
    assert (trace.room, trace.file, trace.direction, trace.algo) == (
        "4821", "lecture, 2.bin", "upload", "tahoe",
    )  # fmt: skip
    assert len(trace.rows) == len(TAHOE)
    start, first_ack = trace.rows[0], trace.rows[1]
    assert start.kind is EventKind.START and start.rtt_ms is None and start.srtt_ms is None
    assert first_ack.ts == pytest.approx(T0 + 0.010)
    assert (first_ack.seq, first_ack.bytes, first_ack.rtt_ms, first_ack.cwnd) == (1, 1000, 10, 2)


def test_what_the_server_exports_parses() -> None:
    record = TransferRecord(
        "ab" * 16, "4821", "a,b.bin", "download", "alice", "cubic", "binary", 3, "0" * 64,
        T0, T0 + 1, "delivered",
    )  # fmt: skip
    rows = [
        EventRow(T0, "START", 1, 0, None, None, None, 1000.0, 1.0, UNSET, 0, 512),
        EventRow(T0 + 0.0021, "ACK", 1, 3, 2.0104, 2.0104, 1.0, 200.0, 2.0, UNSET, 0, 512),
        EventRow(T0 + 0.0021, "COMPLETE", 1, 0, None, 2.0104, 1.0, 200.0, 2.0, UNSET, 0, 512),
    ]
    trace = parse_metrics_csv(to_csv(record, rows))
    assert (trace.file, trace.direction, trace.algo) == ("a,b.bin", "download", "cubic")
    assert [row.kind for row in trace.rows] == [EventKind.START, EventKind.ACK, EventKind.COMPLETE]
    assert trace.rows[1].rtt_ms == 2.01  # the export keeps 3 decimals, trailing zeros cut


def test_a_header_alone_is_a_trace_without_events() -> None:
    # An upload whose client has not reported yet.
    trace = parse_metrics_csv(f"{HEADER}\n".encode())
    assert trace.rows == () and trace.algo == ""
    assert analytics.rounds(trace) == []
    empty = analytics.stats(trace)
    assert (empty.events, empty.goodput_bytes_per_s, empty.loss_rate) == (0, 0.0, None)
    assert empty.mathis_window is None and empty.goodput_x_mathis is None


def test_tahoe_rounds_by_hand() -> None:
    found = analytics.rounds(parse_metrics_csv(body(TAHOE, "tahoe")))
    assert [(r.first, r.last) for r in found] == [
        (1, 2), (3, 3), (4, 8), (9, 9), (10, 10), (11, 11), (12, 13),
    ]  # fmt: skip
    assert [r.cwnd for r in found] == [1, 2, 4, 1, 2, 3, 1]  # slow start, then back to 1
    assert [r.ssthresh for r in found] == [None, None, None, 2, 2, 2, 2]
    assert [r.acked for r in found] == [1, 2, 1, 4, 2, 0, 2]
    seconds = [0.010, 0.010, 0.013, 0.010, 0.010, 0.210, 0.010]
    assert [r.seconds for r in found] == pytest.approx(seconds, abs=1e-5)
    assert not any(r.by_time for r in found)


def test_reno_rounds_by_hand() -> None:
    found = analytics.rounds(parse_metrics_csv(body(RENO, "reno")))
    assert [(r.first, r.last) for r in found] == [
        (1, 2), (3, 3), (4, 8), (9, 11), (12, 12), (13, 14),
    ]  # fmt: skip
    # Reno keeps half its window (+3 for the duplicates) where Tahoe starts again from 1.
    assert [r.cwnd for r in found] == [1, 2, 4, 5, 2.5, 3]
    assert [r.acked for r in found] == [1, 2, 1, 5, 2, 1]


def test_tahoe_stats_by_hand() -> None:
    got = analytics.stats(parse_metrics_csv(body(TAHOE, "tahoe")))
    assert (got.events, got.bytes_acked, got.chunks_acked) == (13, 12000, 12)
    assert got.seconds == pytest.approx(0.273, abs=1e-5)
    assert got.goodput_bytes_per_s == pytest.approx(12000 / 0.273, rel=1e-4)
    assert (got.fast_retransmits, got.timeouts, got.loss_events) == (1, 1, 2)
    assert got.loss_rate == pytest.approx(2 / 12)
    assert got.mathis_window == pytest.approx(3.0)  # √(3/2) / √(1/6) = √9
    assert got.mean_rtt_ms == pytest.approx(10)
    assert got.mathis_goodput_bytes_per_s == pytest.approx(1000 * 3.0 / 0.010)
    assert got.goodput_x_mathis == pytest.approx(12000 / 0.273 / 300_000, rel=1e-4)
    assert got.rounds == 7
    assert got.mean_window == pytest.approx(14 / 7)
    assert (got.max_cwnd, got.final_cwnd, got.final_srtt_ms) == (5, 2, 10)


def test_reno_stats_by_hand() -> None:
    got = analytics.stats(parse_metrics_csv(body(RENO, "reno")))
    assert (got.bytes_acked, got.chunks_acked, got.loss_events, got.timeouts) == (12000, 12, 1, 0)
    assert got.goodput_bytes_per_s == pytest.approx(12000 / 0.064, rel=1e-4)
    assert got.mathis_window == pytest.approx(math.sqrt(18))  # √(3/2) x √12
    assert got.mathis_goodput_bytes_per_s == pytest.approx(1000 * math.sqrt(18) / 0.010)
    assert got.mean_window == pytest.approx(17.5 / 6)
    assert (got.max_cwnd, got.final_cwnd) == (6, 3.333)


def test_recovery_is_shaded_from_the_fast_retransmit_to_its_exit() -> None:
    assert analytics.recovery_spans(parse_metrics_csv(body(RENO, "reno"))) == [Span(8, 10)]
    # Tahoe has no fast recovery; its timeout ends any.
    assert analytics.recovery_spans(parse_metrics_csv(body(TAHOE, "tahoe"))) == []


def test_series_are_on_the_transfers_own_axes() -> None:
    trace = parse_metrics_csv(body(TAHOE, "tahoe"))
    points = analytics.cwnd_points(trace)
    assert [p.index for p in points] == list(range(1, 14))
    assert points[0].elapsed_ms == 0 and points[-1].elapsed_ms == pytest.approx(273, abs=0.01)
    assert points[0].ssthresh is None and points[7].ssthresh == 2  # 2^20 is "not set"
    rtts = analytics.rtt_points(trace)
    assert [p.seq for p in rtts] == [1, 3, 4, 4, 4, 4, 10]  # only events with a sample
    losses = analytics.marks(trace, analytics.LOSS_REACTIONS)
    assert [(m.index, m.seq, m.kind) for m in losses] == [
        (8, 5, EventKind.FAST_RETRANSMIT), (11, 10, EventKind.TIMEOUT),
    ]  # fmt: skip


def test_without_acks_a_round_is_one_srtt() -> None:
    # Beyond the server's event cap only the rarer kinds are kept: no ACK tells rounds apart.
    thinned = [
        (0.000, 1, 0, "", "", 1000, 1, UNSET, "START"),
        (0.010, 1, 1000, 10, 10, 200, 2, UNSET, "ACK"),
        (0.012, 2, 0, "", 10, 200, 2, UNSET, "TAIL_PROBE"),
        (0.018, 3, 0, "", 10, 200, 2, UNSET, "TAIL_PROBE"),  # next event 15 ms after 0.010
        (0.025, 4, 0, "", 10, 200, 2, UNSET, "TAIL_PROBE"),
        (0.041, 5, 0, "", 10, 200, 2, UNSET, "TAIL_PROBE"),
        (0.041, 5, 0, "", 10, 200, 2, UNSET, "COMPLETE"),
    ]
    found = analytics.rounds(parse_metrics_csv(body(thinned, "reno")))
    assert [(r.first, r.last, r.by_time) for r in found] == [
        (1, 2, False), (3, 4, True), (5, 5, True), (6, 7, True),
    ]  # fmt: skip
    assert isinstance(found[0], Round)


def test_the_mathis_formula() -> None:
    assert analytics.mathis_window(0.01) == pytest.approx(12.247, abs=1e-3)
    assert analytics.mathis_window(0.01, constant=1.0) == pytest.approx(10.0)
    assert analytics.mathis_goodput(4096, 0.010, 0.05, constant=1.0) == pytest.approx(
        4096 / (0.010 * math.sqrt(0.05))
    )
    with pytest.raises(ValueError, match="loss rate"):
        analytics.mathis_window(0.0)
    with pytest.raises(ValueError, match="RTT"):
        analytics.mathis_goodput(4096, 0.0, 0.05)


def test_thinning_keeps_every_loss_and_both_ends() -> None:
    points = list(range(1000))
    kept = analytics.thin(points, 100, keep=lambda p: p in (333, 777))
    assert kept[0] == 0 and kept[-1] == 999 and 333 in kept and 777 in kept
    assert len(kept) <= 100 + 3
    assert analytics.thin(points[:5], 100, keep=lambda p: False) == points[:5]


UNCLOSED_QUOTE = '"a'


def good_line(**change: str) -> str:
    fields = dict(zip(CSV_COLUMNS, f"{T0:.6f},4821,a.bin,upload,1,0,,,1000,1,{UNSET},START,reno"
                      .split(","), strict=True))  # fmt: skip
    fields.update(change)
    return ",".join(fields.values())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b"\xff\n", "not UTF-8"),
        (f"{HEADER}".encode(), "end with a line feed"),
        (b"ts,room\n", "header"),
        (f"{HEADER}\n{good_line()},extra\n".encode(), "13 fields"),
        (f"{HEADER}\n{good_line(cwnd='nan')}\n".encode(), "plain decimal"),
        (f"{HEADER}\n{good_line(cwnd='1e3')}\n".encode(), "plain decimal"),
        (f"{HEADER}\n{good_line(seq='-1')}\n".encode(), "whole number"),
        (f"{HEADER}\n{good_line(seq='1_0')}\n".encode(), "whole number"),
        (f"{HEADER}\n{good_line(event='LOSS')}\n".encode(), "event kind"),
        (f"{HEADER}\n{good_line(direction='sideways')}\n".encode(), "direction"),
        (f"{HEADER}\n{good_line(room='12345')}\n".encode(), "room"),
        (f"{HEADER}\n{good_line(file=UNCLOSED_QUOTE)}\n".encode(), "not CSV"),
        (f"{HEADER}\n{good_line()}\n{good_line(algo='tahoe')}\n".encode(), "another transfer"),
        (f"{HEADER}\n{good_line(ts='2')}\n{good_line(ts='1')}\n".encode(), "back in time"),
        (f"{HEADER}\n{good_line(file='x' * 3000)}\n".encode(), "longer than"),
    ],
)
def test_a_bad_body_is_refused(text: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        parse_metrics_csv(text)


def test_more_rows_than_a_server_keeps_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real bound (100 000 rows) takes a 10 MB body to reach; the rule is the same.
    monkeypatch.setattr(analytics, "MAX_ROWS", 2)
    rows = "\n".join(good_line() for _ in range(3))
    with pytest.raises(RemoteProtocolError, match="more than 2 events"):
        parse_metrics_csv(f"{HEADER}\n{rows}\n".encode())
