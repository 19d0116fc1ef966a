"""The driver command of each phase, and reading the OOM counter."""

from __future__ import annotations

import pytest

from syncrox.sandbox import driver
from syncrox.sandbox.languages import plan
from syncrox.sandbox.model import Language


def test_compile_phase_carries_the_code_and_merges_diagnostics() -> None:
    c_plan = plan(Language.C, b"int main(){}")
    argv = driver.compile_argv(c_plan, output_limit_bytes=100, code_bytes=12)
    assert argv is not None
    assert argv[:2] == ["bash", "-c"]
    assert argv[4:8] == ["101", "12", "main.c", "1"]
    assert argv[8:] == list(c_plan.compile_argv or ())


def test_run_phase_of_a_compiled_language_carries_no_code() -> None:
    c_plan = plan(Language.C, b"int main(){}")
    argv = driver.run_argv(c_plan, output_limit_bytes=100, code_bytes=12)
    assert argv[4:8] == ["101", "-", "-", "0"]


def test_python_run_phase_carries_the_code() -> None:
    py_plan = plan(Language.PYTHON, b"print(1)")
    assert driver.compile_argv(py_plan, output_limit_bytes=100, code_bytes=8) is None
    argv = driver.run_argv(py_plan, output_limit_bytes=100, code_bytes=8)
    assert argv[4:8] == ["101", "8", "main.py", "0"]


def test_the_source_must_be_a_plain_name() -> None:
    with pytest.raises(ValueError, match="plain name"):
        driver.driver_argv(
            ["x"], output_limit_bytes=1, source="../etc/x", code_bytes=1, merge=False
        )


@pytest.mark.parametrize(
    ("text", "kills"),
    [
        (b"oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", 2),
        (b"low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", 1),
        (b"oom_kill_disable 0\n", 0),
        (b"", 0),
        (b"oom_kill x\n", 0),
    ],
)
def test_oom_counter(text: bytes, kills: int) -> None:
    assert driver.parse_oom_kills(text) == kills
