"""NewReno (RFC 6582): Reno whose fast recovery survives several losses in one window.

On entering recovery it records ``recover``, the highest chunk sent. An ACK below it is
*partial*: the next hole is resent at once, cwnd is deflated by the chunks acknowledged and
one is added back (never below ssthresh: the inflation is what deflates), and recovery
continues. An ACK at or above ``recover`` is *full*: cwnd =
ssthresh and recovery ends. Duplicate ACKs for a window already recovered (``ack <
recover``) do not halve the window again (RFC 6582 §3.2 step 1).
"""

from __future__ import annotations

from syncrox.protocol.rudp.congestion.reno import Reno


class NewReno(Reno):
    name = "newreno"

    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.recover = 0

    def on_ack(self, acked: int, *, ack: int, now: float, srtt_s: float | None,
               cwnd_limited: bool) -> bool:  # fmt: skip
        if not self.in_recovery:
            if cwnd_limited:
                self._grow_reno(acked)
            return False
        if ack >= self.recover:
            self._deflate()
            return False
        # Partial ACK: deflate by what left the network, add back the chunk we resend. Of
        # the inflation only: the usable window stays ssthresh, as RFC 6582 means it to.
        # Chunks SACKed before recovery began were never in the inflation (it starts at 3)
        # and are no longer in the pipe; deflating cwnd by them too would count them twice.
        self.inflation = max(self.inflation - acked + 1.0, 0.0)
        self.cwnd = self.ssthresh + self.inflation
        return True

    def on_loss(self, *, ack: int, highest_sent: int, now: float) -> bool:
        if ack < self.recover:
            return False
        self.recover = highest_sent
        self._enter_recovery()
        return True

    def on_timeout(
        self, *, flight: int, highest_sent: int, now: float, repeated: bool = False
    ) -> None:
        self.recover = highest_sent
        self._collapse(flight, repeated=repeated)
