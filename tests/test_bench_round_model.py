"""The round model behind ``bench.rudp``'s "textbook rules" row."""

from __future__ import annotations

import math

import pytest

from bench._round_model import MODELLED, round_model_ratio

NO_LOSS = 1e-12  # never drawn in a few rounds


def test_without_loss_the_window_doubles_each_round() -> None:
    # Slow start from one chunk: 1 + 2 + 4 + 8 + 16 chunks in five rounds.
    for algo in MODELLED:
        assert round_model_ratio(algo, NO_LOSS, rounds=5) == pytest.approx(
            31 / 5 * math.sqrt(NO_LOSS)
        )


def test_the_same_seed_gives_the_same_figure() -> None:
    assert round_model_ratio("reno", 0.05, rounds=2000) == round_model_ratio(
        "reno", 0.05, rounds=2000
    )


def test_tahoe_gives_up_a_round_per_loss_that_reno_keeps() -> None:
    # One chunk in the round after each loss instead of ssthresh chunks.
    reno = round_model_ratio("reno", 0.05, rounds=50_000)
    assert round_model_ratio("tahoe", 0.05, rounds=50_000) < reno


def test_the_ratio_stays_near_the_mathis_constant_as_loss_changes() -> None:
    # Mathis: delivered per RTT ~ C / sqrt(p), so the ratio is C whatever p is.
    for loss in (0.01, 0.05):
        assert 0.7 < round_model_ratio("reno", loss, rounds=50_000) < 1.4


def test_it_refuses_what_it_does_not_model() -> None:
    with pytest.raises(ValueError, match="no round model"):
        round_model_ratio("cubic", 0.05, rounds=10)
    with pytest.raises(ValueError, match="loss must be"):
        round_model_ratio("reno", 0.0, rounds=10)
    with pytest.raises(ValueError, match="loss must be"):
        round_model_ratio("reno", 0.05, rounds=0)
