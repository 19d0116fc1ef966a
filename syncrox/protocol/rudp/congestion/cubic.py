"""CUBIC (RFC 9438), in chunks and seconds.

After a loss the window becomes β·cwnd and then follows W(t) = C·(t - K)³ + W_max, which is
concave up to the window of the last loss and convex beyond it; K = ∛(W_max·(1-β)/C) is when
W(t) is back at W_max. Where a Reno flow with the same loss rate would be faster (short
RTTs), the window follows the Reno-friendly estimate W_est instead (§4.3): it grows by
alpha_cubic = 3(1-β)/(1+β) per window until it is back at the window the last reduction started
from, then by 1, like Reno (the RFC's SHOULD: a flow past its old window is no longer
competing for what it just gave up). Fast convergence
(§4.7) lowers W_max when a loss comes before the last W_max was reached. Recovery ends at the
first ACK covering ``recover``; there is no inflation (the sender's pipe accounting does the
job), so ``send_window`` equals ``cwnd``.
"""

from __future__ import annotations

from syncrox.protocol.rudp.congestion.base import MIN_SSTHRESH, CongestionControl

C = 0.4  # chunks / s³
BETA_CUBIC = 0.7
ALPHA_CUBIC = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)  # Reno-friendly additive increase
MAX_GROWTH = 1.5  # the target is clamped to [cwnd, 1.5·cwnd] (§4.2)


class Cubic(CongestionControl):
    name = "cubic"

    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.recover = 0
        self.w_max = 0.0
        self.k_s = 0.0
        self.w_est = 0.0
        self.cwnd_prior = 0.0  # the window when ssthresh was last set
        self.epoch_start_s: float | None = None

    def on_ack(self, acked: int, *, ack: int, now: float, srtt_s: float | None,
               cwnd_limited: bool) -> bool:  # fmt: skip
        if self.in_recovery:
            if ack >= self.recover:
                self.in_recovery = False
                return False
            return True
        if not cwnd_limited:
            return False
        left = float(acked)
        if self.cwnd < self.ssthresh:
            step = min(left, self.ssthresh - self.cwnd)
            self.cwnd += step
            left -= step
        if left > 0:
            self._avoid(left, now, srtt_s or 0.0)
        return False

    def w_cubic(self, t_s: float) -> float:
        return C * (t_s - self.k_s) ** 3 + self.w_max

    def _avoid(self, acked: float, now: float, srtt_s: float) -> None:
        if self.epoch_start_s is None:
            self.epoch_start_s = now
            if self.cwnd < self.w_max:
                self.k_s = ((self.w_max - self.cwnd) / C) ** (1 / 3)
            else:
                self.k_s = 0.0
                self.w_max = self.cwnd
            self.w_est = self.cwnd
        t_s = now - self.epoch_start_s
        target = min(max(self.w_cubic(t_s + srtt_s), self.cwnd), MAX_GROWTH * self.cwnd)
        alpha = 1.0 if self.w_est >= self.cwnd_prior else ALPHA_CUBIC
        self.w_est += alpha * acked / self.cwnd
        if self.w_cubic(t_s) < self.w_est:
            self.cwnd = max(self.cwnd, self.w_est)
        else:
            self.cwnd += (target - self.cwnd) / self.cwnd * acked

    def on_loss(self, *, ack: int, highest_sent: int, now: float) -> bool:
        if self.in_recovery or ack < self.recover:
            return False
        self.recover = highest_sent
        self._reduce()
        self.cwnd = self.ssthresh
        self.in_recovery = True
        return True

    def on_timeout(
        self, *, flight: int, highest_sent: int, now: float, repeated: bool = False
    ) -> None:
        self.recover = highest_sent
        if not repeated:  # a repeated timeout of the same data teaches nothing new
            self.cwnd = max(min(self.cwnd, float(flight)), 1.0)
            self._reduce()
        self.cwnd = 1.0
        self.in_recovery = False

    def _reduce(self) -> None:
        self.cwnd_prior = self.cwnd
        # Fast convergence: a loss before reaching the previous W_max releases bandwidth.
        if self.cwnd < self.w_max:
            self.w_max = self.cwnd * (1 + BETA_CUBIC) / 2
        else:
            self.w_max = self.cwnd
        self.ssthresh = max(self.cwnd * BETA_CUBIC, MIN_SSTHRESH)
        self.k_s = (self.w_max * (1 - BETA_CUBIC) / C) ** (1 / 3)
        self.epoch_start_s = None
