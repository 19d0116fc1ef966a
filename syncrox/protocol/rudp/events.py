"""What the sender reports about congestion state: one record per change, for analytics.

The core only builds these records and hands them to a hook; the service stores them in
SQLite and exports them as the original CSV and as qlog-style JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EventKind(enum.Enum):
    START = "START"  # the data phase began (first chunk may go out)
    ACK = "ACK"  # the cumulative ACK advanced
    DUP_ACK = "DUP_ACK"  # chunks arrived above a hole (SACKed): a duplicate ACK
    FAST_RETRANSMIT = "FAST_RETRANSMIT"  # loss detected by duplicates: reaction + resend
    RECOVERY_EXIT = "RECOVERY_EXIT"  # fast recovery ended (Reno deflation, full ACK)
    TIMEOUT = "TIMEOUT"  # retransmission timer expired
    TAIL_PROBE = "TAIL_PROBE"  # a tail loss probe went out (no congestion reaction)
    RWND_CHANGE = "RWND_CHANGE"  # the receiver advertised a different window
    WINDOW_PROBE = "WINDOW_PROBE"  # a zero window was probed
    COMPLETE = "COMPLETE"  # every chunk acknowledged
    FAILED = "FAILED"  # the transfer gave up


# Frequent and individually unremarkable: beyond a transfer's event cap only the others
# (fast retransmits, timeouts, recovery, probes, start and end) are still kept.
ROUTINE_KINDS = frozenset({EventKind.ACK, EventKind.DUP_ACK, EventKind.RWND_CHANGE})


@dataclass(frozen=True, slots=True)
class TransferEvent:
    time_s: float
    kind: EventKind
    seq: int  # the chunk the event is about (cumulative ACK, resent chunk, ...)
    bytes: int  # bytes newly acknowledged by this event
    rtt_ms: float | None  # the RTT sample this event produced, if any
    srtt_ms: float | None
    rttvar_ms: float | None
    rto_ms: float
    cwnd: float  # chunks
    ssthresh: float  # chunks
    bytes_in_flight: int
    rwnd: int  # chunks the receiver can still take
