"""The contract every congestion-control algorithm fulfils. Units: chunks (segments).

Theory of operation
-------------------
The sender owns loss *detection* (duplicate ACKs, SACK, timeouts) and tells the algorithm
what happened; the algorithm owns the *reaction* (``cwnd``, ``ssthresh``, recovery). The
calls are:

``on_ack(acked, ...)``   the cumulative ACK advanced by ``acked`` chunks. Returns ``True``
                         when the first unacknowledged chunk must be resent now (a NewReno
                         partial ACK).
``on_duplicate(count)``  ``count`` more chunks reached the receiver above a hole while in
                         fast recovery (each is one classic duplicate ACK).
``on_loss(...)``         the duplicate-ACK threshold was reached; returns ``False`` when this
                         loss belongs to a window already being recovered.
``on_timeout(...)``      the retransmission timer expired. ssthresh becomes half the data in
                         flight (RFC 5681 eq. 4), and stays put on a repeated timeout of the
                         same data (its retransmission was lost too: no new information).

``cwnd`` is reported as the textbooks define it, Reno's inflation included; ``send_window``
is what the sender may have in the network, which excludes the inflation because the sender
already stops counting chunks the receiver holds (RFC 6675's "pipe"). Growth happens only
while the sender was limited by ``cwnd`` (RFC 7661), so an idle or receiver-limited flow
never builds a window it has not used. No algorithm does I/O; the sender reports state for
analytics through its event hook.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from typing import ClassVar

INITIAL_CWND = 1.0  # the seed's (and the original's) initial window, in chunks
# RFC 5681: "arbitrarily high"; the receiver's window bounds a flow until its first loss.
INITIAL_SSTHRESH = float(2**20)
MIN_SSTHRESH = 2.0


class Phase(enum.Enum):
    SLOW_START = "SLOW_START"
    CONGESTION_AVOIDANCE = "CONGESTION_AVOIDANCE"
    FAST_RECOVERY = "FAST_RECOVERY"


class CongestionControl(ABC):
    name: ClassVar[str]

    def __init__(
        self, *, initial_cwnd: float = INITIAL_CWND, initial_ssthresh: float = INITIAL_SSTHRESH
    ) -> None:
        self.cwnd = initial_cwnd
        self.ssthresh = initial_ssthresh
        self.in_recovery = False
        self.inflation = 0.0  # chunks of cwnd that stand for data held by the receiver
        self._ca_acked = 0.0  # chunks acknowledged towards the next +1 in avoidance

    @property
    def phase(self) -> Phase:
        if self.in_recovery:
            return Phase.FAST_RECOVERY
        return Phase.SLOW_START if self.cwnd < self.ssthresh else Phase.CONGESTION_AVOIDANCE

    @property
    def send_window(self) -> float:
        return max(self.cwnd - self.inflation, 1.0)

    @abstractmethod
    def on_ack(self, acked: int, *, ack: int, now: float, srtt_s: float | None,
               cwnd_limited: bool) -> bool: ...  # fmt: skip

    def on_duplicate(self, count: int) -> None:  # noqa: B027 (most algorithms ignore it)
        """More chunks reached the receiver during fast recovery."""

    @abstractmethod
    def on_loss(self, *, ack: int, highest_sent: int, now: float) -> bool: ...

    @abstractmethod
    def on_timeout(
        self, *, flight: int, highest_sent: int, now: float, repeated: bool = False
    ) -> None: ...

    # Shared arithmetic -----------------------------------------------------------------

    def _halved(self) -> float:
        """The new ssthresh after a loss: half the window, at least two chunks."""
        return max(float(int(self.cwnd) // 2), MIN_SSTHRESH)

    def _grow_reno(self, acked: int) -> None:
        """Slow start: +1 per chunk acknowledged, not beyond ssthresh (Linux style, so a
        cumulative ACK for many chunks counts them all: RFC 3465 byte counting). Congestion
        avoidance: +1 once a whole window of chunks has been acknowledged."""
        left = float(acked)
        if self.cwnd < self.ssthresh:
            step = min(left, self.ssthresh - self.cwnd)
            self.cwnd += step
            left -= step
        if left <= 0:
            return
        self._ca_acked += left
        while self._ca_acked >= self.cwnd:
            self._ca_acked -= self.cwnd
            self.cwnd += 1.0

    def _collapse(self, flight: int | None = None, *, repeated: bool = False) -> None:
        """Timeout (``flight`` given) or Tahoe's fast retransmit: one chunk, slow start."""
        if flight is None:
            self.ssthresh = self._halved()
        elif not repeated:
            self.ssthresh = max(float(flight // 2), MIN_SSTHRESH)
        self.cwnd = INITIAL_CWND
        self.in_recovery = False
        self.inflation = 0.0
        self._ca_acked = 0.0
