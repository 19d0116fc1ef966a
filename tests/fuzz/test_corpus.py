"""Replay every committed fuzz input (and any crash reproducer) through its target."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.targets import TARGETS

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"


def corpus_inputs() -> list[tuple[str, Path]]:
    inputs = []
    for name in TARGETS:
        for path in sorted((FUZZ_DIR / "corpus" / name).glob("*")):
            inputs.append((name, path))
    return inputs


def test_every_target_has_a_seed_corpus() -> None:
    for name in TARGETS:
        assert any((FUZZ_DIR / "corpus" / name).glob("*")), f"no corpus for {name}"


@pytest.mark.parametrize(("target", "path"), corpus_inputs(), ids=lambda v: getattr(v, "name", v))
def test_corpus_input_holds_its_invariant(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())
