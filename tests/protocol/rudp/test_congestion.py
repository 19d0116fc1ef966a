"""Scripted losses reproduce the textbook Tahoe and Reno congestion-window traces exactly.

The round-based traces are those of Kurose & Ross, "Evolution of TCP's congestion window
(Tahoe and Reno)": initial ssthresh 8, every chunk of a round acknowledged one by one, and
three duplicate ACKs in round 8 when cwnd is 12. Tahoe restarts from 1; Reno (RFC 5681)
inflates to ssthresh + 3 = 9 during recovery and deflates to ssthresh = 6 when the
retransmission is acknowledged, then grows linearly.
"""

from __future__ import annotations

import pytest

from syncrox.protocol.rudp.congestion import ALGORITHMS, make_controller
from syncrox.protocol.rudp.congestion.base import CongestionControl, Phase
from syncrox.protocol.rudp.congestion.cubic import BETA_CUBIC, C, Cubic
from syncrox.protocol.rudp.congestion.newreno import NewReno
from syncrox.protocol.rudp.congestion.reno import Reno
from syncrox.protocol.rudp.congestion.tahoe import Tahoe


def ack_round(cc: CongestionControl) -> None:
    """Every chunk of one round (cwnd of them) is acknowledged by its own ACK."""
    for _ in range(int(cc.cwnd)):
        cc.on_ack(1, ack=0, now=0.0, srtt_s=None, cwnd_limited=True)


def triple_duplicate(cc: CongestionControl, window: int) -> None:
    """One chunk of a ``window``-chunk round is lost and the others arrive (duplicate ACKs).
    Reno's fast retransmit is acknowledged within the round; Tahoe's retransmission is the
    single chunk of the next round, as in the textbook figure."""
    assert cc.on_loss(ack=0, highest_sent=window, now=0.0)
    cc.on_duplicate(window - 1 - 3)  # the duplicates after the third
    if cc.in_recovery:
        cc.on_ack(1, ack=window, now=0.0, srtt_s=None, cwnd_limited=True)


def trace(cc: CongestionControl, rounds: int, loss_round: int) -> list[float]:
    cwnds = []
    for round_no in range(1, rounds + 1):
        cwnds.append(cc.cwnd)
        if round_no == loss_round:
            triple_duplicate(cc, int(cc.cwnd))
        else:
            ack_round(cc)
    return cwnds


def test_tahoe_textbook_trace() -> None:
    cc = Tahoe(initial_ssthresh=8)
    assert trace(cc, 15, loss_round=8) == [1, 2, 4, 8, 9, 10, 11, 12, 1, 2, 4, 6, 7, 8, 9]
    assert cc.ssthresh == 6


def test_reno_textbook_trace() -> None:
    cc = Reno(initial_ssthresh=8)
    assert trace(cc, 12, loss_round=8) == [1, 2, 4, 8, 9, 10, 11, 12, 6, 7, 8, 9]
    assert cc.ssthresh == 6


def test_reno_fast_recovery_step_by_step() -> None:
    cc = Reno(initial_ssthresh=8)
    cc.cwnd = 12.0
    assert cc.on_loss(ack=0, highest_sent=12, now=0.0)
    assert (cc.cwnd, cc.ssthresh, cc.phase) == (9.0, 6.0, Phase.FAST_RECOVERY)
    inflated = []
    for _ in range(4):
        cc.on_duplicate(1)
        inflated.append(cc.cwnd)
    assert inflated == [10.0, 11.0, 12.0, 13.0]
    assert cc.send_window == 6.0  # the inflation stands for chunks the receiver holds
    cc.on_ack(12, ack=12, now=0.0, srtt_s=None, cwnd_limited=True)
    assert (cc.cwnd, cc.phase) == (6.0, Phase.CONGESTION_AVOIDANCE)


@pytest.mark.parametrize("algo", ["tahoe", "reno", "newreno"])
def test_timeout_collapses_to_one_chunk_and_slow_starts(algo: str) -> None:
    cc = make_controller(algo)
    cc.cwnd, cc.ssthresh = 20.0, 10.0
    cc.on_timeout(flight=20, highest_sent=40, now=0.0)
    cc.on_timeout(flight=1, highest_sent=40, now=0.0, repeated=True)  # keeps ssthresh
    assert (cc.cwnd, cc.ssthresh, cc.phase) == (1.0, 10.0, Phase.SLOW_START)
    ack_round(cc)
    ack_round(cc)
    assert cc.cwnd == 4.0


def test_tahoe_three_duplicates_is_like_a_timeout() -> None:
    cc = Tahoe()
    cc.cwnd, cc.ssthresh = 16.0, 8.0
    assert cc.on_loss(ack=3, highest_sent=20, now=0.0)
    assert (cc.cwnd, cc.ssthresh, cc.in_recovery) == (1.0, 8.0, False)


def test_newreno_partial_ack_keeps_recovering() -> None:
    cc = NewReno()
    cc.cwnd = 12.0
    assert cc.on_loss(ack=0, highest_sent=12, now=0.0)  # recover = 12
    cc.on_duplicate(5)
    assert cc.cwnd == 14.0
    # A partial ACK (chunks 1-4; chunk 5 was lost too): resend the next hole at once.
    assert cc.on_ack(4, ack=4, now=0.0, srtt_s=None, cwnd_limited=True)
    assert (cc.cwnd, cc.in_recovery) == (11.0, True)
    # Duplicates of the old window do not halve the window again.
    assert not cc.on_loss(ack=4, highest_sent=12, now=0.0)
    assert not cc.on_ack(8, ack=12, now=0.0, srtt_s=None, cwnd_limited=True)
    assert (cc.cwnd, cc.in_recovery) == (6.0, False)


def test_newreno_partial_ack_never_shrinks_the_usable_window_below_ssthresh() -> None:
    # Chunks SACKed before recovery began are not in the inflation (it starts at 3): a
    # partial ACK covering them deflates the inflation, not the usable window.
    cc = NewReno()
    cc.cwnd = 20.0
    assert cc.on_loss(ack=0, highest_sent=20, now=0.0)
    cc.on_duplicate(1)
    assert (cc.cwnd, cc.ssthresh, cc.inflation, cc.send_window) == (14.0, 10.0, 4.0, 10.0)
    assert cc.on_ack(8, ack=8, now=0.0, srtt_s=None, cwnd_limited=True)
    assert (cc.cwnd, cc.inflation, cc.send_window, cc.in_recovery) == (10.0, 0.0, 10.0, True)


def test_reno_ignores_partial_acks() -> None:
    cc = Reno()
    cc.cwnd = 12.0
    cc.on_loss(ack=0, highest_sent=12, now=0.0)
    assert not cc.on_ack(4, ack=4, now=0.0, srtt_s=None, cwnd_limited=True)
    assert (cc.cwnd, cc.in_recovery) == (6.0, False)


def test_no_growth_when_not_limited_by_cwnd() -> None:
    for name in ALGORITHMS:
        cc = make_controller(name)
        before = cc.cwnd
        cc.on_ack(10, ack=10, now=1.0, srtt_s=0.01, cwnd_limited=False)
        assert cc.cwnd == before, name


def test_cubic_reduction_and_k() -> None:
    cc = Cubic()
    cc.cwnd, cc.ssthresh = 100.0, 50.0
    assert cc.on_loss(ack=10, highest_sent=110, now=0.0)
    assert cc.cwnd == pytest.approx(100 * BETA_CUBIC)
    assert cc.w_max == 100.0
    assert cc.k_s == pytest.approx((100 * (1 - BETA_CUBIC) / C) ** (1 / 3))
    assert cc.w_cubic(cc.k_s) == pytest.approx(100.0)  # back at W_max after K seconds


def test_cubic_fast_convergence_lowers_w_max() -> None:
    cc = Cubic()
    cc.w_max, cc.cwnd = 100.0, 80.0
    cc.on_loss(ack=0, highest_sent=80, now=0.0)
    assert cc.w_max == pytest.approx(80 * (1 + BETA_CUBIC) / 2)


def test_cubic_grows_towards_w_max_then_beyond() -> None:
    cc = Cubic()
    cc.cwnd, cc.ssthresh = 100.0, 50.0
    cc.on_loss(ack=0, highest_sent=100, now=0.0)
    cc.on_ack(100, ack=101, now=0.0, srtt_s=0.1, cwnd_limited=True)  # leaves recovery
    now, cwnds = 0.0, []
    for _ in range(200):
        now += 0.1
        cc.on_ack(int(cc.cwnd), ack=200, now=now, srtt_s=0.1, cwnd_limited=True)
        cwnds.append(cc.cwnd)
    assert cwnds == sorted(cwnds)  # never shrinks without a loss
    assert cwnds[-1] > 100.0  # convex region beyond the last W_max
    assert min(cwnds) >= 70.0


def test_every_algorithm_keeps_cwnd_at_least_one() -> None:
    for name in ALGORITHMS:
        cc = make_controller(name)
        for _ in range(5):
            cc.on_timeout(flight=1, highest_sent=5, now=0.0)
            cc.on_loss(ack=0, highest_sent=5, now=0.0)
            assert cc.cwnd >= 1.0 and cc.send_window >= 1.0 and cc.ssthresh >= 2.0


def test_cubic_reno_friendly_estimate_speeds_up_once_past_the_old_window() -> None:
    # RFC 9438 §4.3: W_est grows by alpha_cubic per window until it reaches the window the
    # last reduction started from, then by 1 per window, as Reno does.
    cc = Cubic()
    cc.cwnd, cc.ssthresh = 20.0, 10.0
    cc.on_loss(ack=0, highest_sent=20, now=0.0)
    cc.on_ack(14, ack=21, now=0.0, srtt_s=0.01, cwnd_limited=True)  # leaves recovery
    assert cc.cwnd_prior == 20.0
    now, steps = 0.0, []
    while cc.w_est < 24.0:
        now += 0.01
        before = cc.w_est
        cc.on_ack(int(cc.cwnd), ack=0, now=now, srtt_s=0.01, cwnd_limited=True)
        steps.append((before, cc.w_est - before))
    slow = [step for start, step in steps if 15.0 <= start < 19.0]
    fast = [step for start, step in steps if start >= 20.0]
    assert slow and fast
    alpha = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)
    assert all(step == pytest.approx(alpha, rel=0.1) for step in slow)
    assert all(step == pytest.approx(1.0, rel=0.1) for step in fast)
