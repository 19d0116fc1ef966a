"""The RTT estimator follows the seed's formulas exactly; back-off is capped and sticky."""

from __future__ import annotations

import pytest

from syncrox.protocol.rudp.rtt import RTO_INITIAL_MS, RttEstimator


def test_first_sample_sets_srtt_and_half_rttvar() -> None:
    rtt = RttEstimator()
    assert rtt.rto_ms == RTO_INITIAL_MS
    rtt.on_sample(100.0)
    assert (rtt.srtt_ms, rtt.rttvar_ms) == (100.0, 50.0)
    assert rtt.rto_ms == 300.0  # 100 + 4 * 50


def test_later_samples_use_the_old_srtt_for_rttvar() -> None:
    rtt = RttEstimator()
    rtt.on_sample(100.0)
    rtt.on_sample(200.0)
    # RTTVAR = 0.75 * 50 + 0.25 * |100 - 200| = 62.5; SRTT = 0.875 * 100 + 0.125 * 200 = 112.5
    assert rtt.rttvar_ms == pytest.approx(62.5)
    assert rtt.srtt_ms == pytest.approx(112.5)
    assert rtt.rto_ms == pytest.approx(112.5 + 4 * 62.5)


def test_rto_never_below_200_ms() -> None:
    rtt = RttEstimator()
    for _ in range(50):
        rtt.on_sample(1.0)
    assert rtt.rto_ms == 200.0


def test_backoff_doubles_and_is_capped() -> None:
    rtt = RttEstimator(rto_max_ms=2000.0)
    rtt.on_sample(100.0)  # RTO 300
    rtos = []
    for _ in range(6):
        rtt.on_timeout()
        rtos.append(rtt.rto_ms)
    assert rtos == [600.0, 1200.0, 2000.0, 2000.0, 2000.0, 2000.0]


def test_a_sample_from_before_the_timeout_does_not_erase_the_backoff() -> None:
    rtt = RttEstimator()
    rtt.on_sample(100.0)
    rtt.on_timeout()
    rtt.on_timeout()
    rtt.on_sample(100.0, after_timeout=False)
    assert rtt.rto_ms == 4 * rtt.base_rto_ms
    rtt.on_sample(100.0, after_timeout=True)
    assert rtt.rto_ms == rtt.base_rto_ms
