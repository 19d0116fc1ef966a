"""TCP Tahoe, per the seed: on a timeout *and* on three duplicate ACKs, ssthresh = cwnd/2,
cwnd = 1 and slow start. There is no fast recovery."""

from __future__ import annotations

from syncrox.protocol.rudp.congestion.base import CongestionControl


class Tahoe(CongestionControl):
    name = "tahoe"

    def on_ack(self, acked: int, *, ack: int, now: float, srtt_s: float | None,
               cwnd_limited: bool) -> bool:  # fmt: skip
        if cwnd_limited:
            self._grow_reno(acked)
        return False

    def on_loss(self, *, ack: int, highest_sent: int, now: float) -> bool:
        self._collapse()
        return True

    def on_timeout(
        self, *, flight: int, highest_sent: int, now: float, repeated: bool = False
    ) -> None:
        self._collapse(flight, repeated=repeated)
