"""The collab benchmark's floor server really relays and acknowledges (a floor that lost
frames would report a cost it never paid)."""

from __future__ import annotations

import pytest

from bench.collab import floor_replay, generate_trace


@pytest.mark.parametrize("mode", ["relay", "store"])
def test_the_trace_converges_through_the_floor(mode: str) -> None:
    trace = generate_trace(300)
    outcome = floor_replay(trace, mode)
    assert outcome.converged, outcome
    assert outcome.errors == []
    assert outcome.frames == 2 * len(trace.rounds)
