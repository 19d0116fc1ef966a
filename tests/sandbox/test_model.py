"""The verdict of a job from the facts of its phases (syncrox.sandbox.model.decide)."""

from __future__ import annotations

import pytest

from syncrox.sandbox.model import Limits, Phase, PhaseOutcome, Verdict, decide, unavailable

LIMITS = Limits(
    compile_time_limit_s=15, run_time_limit_s=5, memory_limit_bytes=256 << 20,
    output_limit_bytes=65536,
)  # fmt: skip


def compiled(**overrides: object) -> PhaseOutcome:
    fields: dict[str, object] = {"phase": Phase.COMPILE, "duration_ms": 100, "exit_code": 0}
    fields.update(overrides)
    return PhaseOutcome(**fields)  # type: ignore[arg-type]


def ran(**overrides: object) -> PhaseOutcome:
    fields: dict[str, object] = {"phase": Phase.RUN, "duration_ms": 30, "exit_code": 0}
    fields.update(overrides)
    return PhaseOutcome(**fields)  # type: ignore[arg-type]


def test_a_clean_run_is_ok_with_both_durations() -> None:
    result = decide(compiled(stdout=b"warning: x\n"), ran(stdout=b"hi\n"), LIMITS)
    assert result.verdict is Verdict.OK
    assert (result.exit_code, result.compile_ms, result.run_ms) == (0, 100, 30)
    assert result.stdout == b"hi\n" and result.diag == b"warning: x\n"
    assert result.truncated == ()


def test_python_has_no_compile_duration() -> None:
    result = decide(None, ran(), LIMITS)
    assert result.verdict is Verdict.OK and result.compile_ms is None


def test_compiler_failure_is_compile_error_with_the_message_and_no_run() -> None:
    result = decide(compiled(exit_code=1, stdout=b"main.c:1: error: boom\n"), None, LIMITS)
    assert result.verdict is Verdict.COMPILE_ERROR
    assert result.diag.startswith(b"main.c:1: error: boom")
    assert result.exit_code == 1 and result.run_ms is None


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (compiled(exit_code=None, timed_out=True), Verdict.TIMEOUT),
        (compiled(exit_code=1, oom_killed=True), Verdict.MEMORY_LIMIT),
        (compiled(exit_code=None, timed_out=True, oom_killed=True), Verdict.MEMORY_LIMIT),
        (compiled(exit_code=None, stdout_truncated=True), Verdict.COMPILE_ERROR),
    ],
)
def test_compile_phase_limits(outcome: PhaseOutcome, verdict: Verdict) -> None:
    result = decide(outcome, None, LIMITS)
    assert result.verdict is verdict
    assert result.run_ms is None


@pytest.mark.parametrize(
    ("outcome", "verdict", "note"),
    [
        (ran(exit_code=3), Verdict.RUNTIME_ERROR, b"status 3"),
        (ran(exit_code=139), Verdict.RUNTIME_ERROR, b"signal 11"),
        (ran(exit_code=None, timed_out=True), Verdict.TIMEOUT, b"time limit of 5 s"),
        (ran(exit_code=137, oom_killed=True), Verdict.MEMORY_LIMIT, b"256 MiB"),
        (ran(exit_code=None, stdout_truncated=True), Verdict.OUTPUT_LIMIT, b"65536 bytes"),
        (ran(exit_code=1, stderr_truncated=True), Verdict.OUTPUT_LIMIT, b"65536 bytes"),
        (ran(exit_code=None, timed_out=True, oom_killed=True), Verdict.MEMORY_LIMIT, b"memory"),
        (
            ran(exit_code=None, timed_out=True, stdout_truncated=True),
            Verdict.OUTPUT_LIMIT,
            b"exceeded",
        ),
    ],
)
def test_run_phase_verdicts_and_notes(outcome: PhaseOutcome, verdict: Verdict, note: bytes) -> None:
    result = decide(compiled(), outcome, LIMITS)
    assert result.verdict is verdict
    assert note in result.diag


def test_partial_output_survives_a_timeout() -> None:
    result = decide(None, ran(exit_code=None, timed_out=True, stdout=b"started\n"), LIMITS)
    assert result.verdict is Verdict.TIMEOUT and result.stdout == b"started\n"


def test_truncated_names_the_cut_streams() -> None:
    result = decide(None, ran(exit_code=None, stdout_truncated=True, stderr_truncated=True), LIMITS)
    assert result.truncated == ("stdout", "stderr")


def test_unavailable_carries_the_reason() -> None:
    result = unavailable("cannot reach the Docker engine: no socket")
    assert result.verdict is Verdict.SANDBOX_UNAVAILABLE
    assert b"no socket" in result.diag and result.exit_code is None


def test_a_successful_compile_needs_a_run_phase() -> None:
    with pytest.raises(ValueError, match="run phase"):
        decide(compiled(), None, LIMITS)
