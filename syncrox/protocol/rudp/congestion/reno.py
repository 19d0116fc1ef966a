"""TCP Reno, per the seed and RFC 5681: three duplicate ACKs → ssthresh = cwnd/2,
cwnd = ssthresh + 3 and fast recovery; each further duplicate inflates cwnd by one; the
first ACK of new data deflates cwnd to ssthresh and ends recovery. Timeout: as Tahoe."""

from __future__ import annotations

from syncrox.protocol.rudp.congestion.base import CongestionControl

DUPLICATE_ACK_INFLATION = 3.0  # the three duplicates that signalled the loss


class Reno(CongestionControl):
    name = "reno"

    def on_ack(self, acked: int, *, ack: int, now: float, srtt_s: float | None,
               cwnd_limited: bool) -> bool:  # fmt: skip
        if self.in_recovery:
            self._deflate()
        elif cwnd_limited:
            self._grow_reno(acked)
        return False

    def on_duplicate(self, count: int) -> None:
        if self.in_recovery:
            self.cwnd += count
            self.inflation += count

    def on_loss(self, *, ack: int, highest_sent: int, now: float) -> bool:
        self._enter_recovery()
        return True

    def on_timeout(
        self, *, flight: int, highest_sent: int, now: float, repeated: bool = False
    ) -> None:
        self._collapse(flight, repeated=repeated)

    def _enter_recovery(self) -> None:
        self.ssthresh = self._halved()
        self.cwnd = self.ssthresh + DUPLICATE_ACK_INFLATION
        self.inflation = DUPLICATE_ACK_INFLATION
        self.in_recovery = True
        self._ca_acked = 0.0

    def _deflate(self) -> None:
        self.cwnd = self.ssthresh
        self.inflation = 0.0
        self.in_recovery = False
