from __future__ import annotations

import pytest

from bench.common import percentile, result_line


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_result_line_is_machine_readable() -> None:
    line = result_line("demo", ratio=2.0, target_met=True, converged=False, note="a b")
    assert line == "RESULT demo ratio=2 target_met=true converged=false note=a_b"
