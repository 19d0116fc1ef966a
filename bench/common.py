"""What every benchmark shares: the ``--quick`` flag, percentiles and the RESULT line.

Every script in ``bench/`` measures its subject *and* a baseline in the same run on the same
machine, reports ratios, and ends with exactly one line::

    RESULT <bench> key=value key=value ...

where ratios and targets are plain numbers and verdicts are ``true``/``false`` (for
example ``target_met=true``), so anyone can read the outcome without parsing prose.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence


def parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    return parser


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sample."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace(" ", "_")


def result_line(bench: str, **values: object) -> str:
    fields = " ".join(f"{key}={format_value(value)}" for key, value in values.items())
    return f"RESULT {bench} {fields}"
