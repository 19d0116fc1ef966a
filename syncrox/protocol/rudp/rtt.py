"""Round-trip time estimation and the retransmission timeout, exactly as the seed specifies.

First sample R: SRTT = R, RTTVAR = R/2. Later samples: RTTVAR = (1-beta)·RTTVAR + beta·|SRTT - R|
(with the old SRTT), then SRTT = (1-alpha)·SRTT + alpha·R, alpha = 0.125, beta = 0.25.
RTO = max(SRTT + 4·RTTVAR, 200 ms); before any sample, 1 s (RFC 6298).

Back-off: each timeout doubles the RTO, up to ``RTO_MAX_MS``. Callers feed samples only from
chunks transmitted exactly once (Karn's rule), never from duplicate ACKs or the handshake.
The back-off is *not* erased by the next sample, as the original's was (its flaw 19): a
sample from a chunk sent before the timeout updates SRTT and RTTVAR, but only a sample from
a chunk first sent after the most recent timeout (``after_timeout=True``) proves the path
has recovered and clears the back-off.
"""

from __future__ import annotations

ALPHA = 0.125
BETA = 0.25
K = 4
RTO_MIN_MS = 200.0
RTO_INITIAL_MS = 1000.0
RTO_MAX_MS = 30_000.0  # the original's cap; RFC 6298 allows any cap of at least 60 s


class RttEstimator:
    def __init__(self, *, rto_min_ms: float = RTO_MIN_MS, rto_max_ms: float = RTO_MAX_MS) -> None:
        self.rto_min_ms = rto_min_ms
        self.rto_max_ms = rto_max_ms
        self.srtt_ms: float | None = None
        self.rttvar_ms: float | None = None
        self.latest_ms: float | None = None
        self.backoff = 0  # timeouts since the path last proved itself

    @property
    def base_rto_ms(self) -> float:
        if self.srtt_ms is None or self.rttvar_ms is None:
            return RTO_INITIAL_MS
        return max(self.srtt_ms + K * self.rttvar_ms, self.rto_min_ms)

    @property
    def rto_ms(self) -> float:
        return min(self.base_rto_ms * float(2**self.backoff), self.rto_max_ms)

    @property
    def rto_s(self) -> float:
        return self.rto_ms / 1000.0

    def on_sample(self, rtt_ms: float, *, after_timeout: bool = True) -> None:
        """Feed one valid sample (Karn: from a chunk transmitted exactly once)."""
        rtt_ms = max(rtt_ms, 0.0)
        self.latest_ms = rtt_ms
        if self.srtt_ms is None or self.rttvar_ms is None:
            self.srtt_ms = rtt_ms
            self.rttvar_ms = rtt_ms / 2
        else:
            self.rttvar_ms = (1 - BETA) * self.rttvar_ms + BETA * abs(self.srtt_ms - rtt_ms)
            self.srtt_ms = (1 - ALPHA) * self.srtt_ms + ALPHA * rtt_ms
        if after_timeout:
            self.backoff = 0

    def on_timeout(self) -> None:
        """Double the RTO (bounded: once at the cap, further timeouts keep it there)."""
        if self.base_rto_ms * float(2**self.backoff) < self.rto_max_ms:
            self.backoff += 1
