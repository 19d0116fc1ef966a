"""What a sandbox job is and what it yields: languages, verdicts, results. Pure data.

The verdict of a job is decided from facts about its phases (``PhaseOutcome``) by one pure
function, ``decide``, in this order (first match wins):

1. the engine could not be used                        -> SANDBOX_UNAVAILABLE
2. compile phase: memory exhausted (OOM kill)          -> MEMORY_LIMIT
                  wall time exceeded                   -> TIMEOUT
                  any other failure or output overflow -> COMPILE_ERROR
3. run phase:     memory exhausted (OOM kill)          -> MEMORY_LIMIT
                  output beyond the cap                -> OUTPUT_LIMIT
                  wall time exceeded                   -> TIMEOUT
                  non-zero exit status                 -> RUNTIME_ERROR
4. otherwise                                           -> OK

Memory comes first because an OOM kill is the root cause of whatever follows it; output
overflow comes before the timeout because a flooding program is stopped as soon as its
output crosses the cap (so a timeout after it cannot happen in practice).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Language(enum.Enum):
    PYTHON = "python"
    C = "c"
    CPP = "cpp"
    JAVA = "java"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(language.value for language in cls)


class Verdict(enum.Enum):
    OK = "OK"
    COMPILE_ERROR = "COMPILE_ERROR"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    TIMEOUT = "TIMEOUT"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    OUTPUT_LIMIT = "OUTPUT_LIMIT"
    SANDBOX_UNAVAILABLE = "SANDBOX_UNAVAILABLE"


class Phase(enum.Enum):
    COMPILE = "compile"
    RUN = "run"


@dataclass(frozen=True)
class Job:
    language: Language
    code: bytes
    stdin: bytes = b""


@dataclass(frozen=True)
class PhaseOutcome:
    """What one phase (one process tree in the container) did."""

    phase: Phase
    duration_ms: int
    exit_code: int | None  # None: it did not finish (timeout, output overflow)
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    oom_killed: bool = False

    @property
    def overflowed(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    @property
    def failed(self) -> bool:
        return self.timed_out or self.oom_killed or self.overflowed or self.exit_code != 0


@dataclass(frozen=True)
class ExecResult:
    """The outcome of a job. ``diag`` holds the compiler's output and the sandbox's notes
    (why a limit hit, why the engine is unavailable); ``stdout``/``stderr`` are the program's.
    Durations are ``None`` for a phase that did not take place."""

    verdict: Verdict
    exit_code: int | None = None
    compile_ms: int | None = None
    run_ms: int | None = None
    diag: bytes = b""
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    diag_truncated: bool = False

    @property
    def truncated(self) -> tuple[str, ...]:
        """Names of the streams that were cut at the output cap."""
        flags = (
            ("diag", self.diag_truncated),
            ("stdout", self.stdout_truncated),
            ("stderr", self.stderr_truncated),
        )
        return tuple(name for name, cut in flags if cut)


def unavailable(reason: str) -> ExecResult:
    return ExecResult(Verdict.SANDBOX_UNAVAILABLE, diag=reason.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Limits:
    """The limits a job ran under, for the sandbox's notes in ``diag``."""

    compile_time_limit_s: float
    run_time_limit_s: float
    memory_limit_bytes: int
    output_limit_bytes: int


def decide(
    compile_phase: PhaseOutcome | None, run_phase: PhaseOutcome | None, limits: Limits
) -> ExecResult:
    """The verdict and result of a job from its phases (see the module docstring)."""
    compile_ms = compile_phase.duration_ms if compile_phase else None
    if compile_phase is not None and compile_phase.failed:
        return _compile_failure(compile_phase, limits)
    if run_phase is None:
        raise ValueError("a job whose compile phase succeeded must have a run phase")
    verdict, note = _run_verdict(run_phase, limits)
    return ExecResult(
        verdict,
        exit_code=run_phase.exit_code,
        compile_ms=compile_ms,
        run_ms=run_phase.duration_ms,
        diag=(compile_phase.stdout if compile_phase else b"") + note.encode(),
        stdout=run_phase.stdout,
        stderr=run_phase.stderr,
        stdout_truncated=run_phase.stdout_truncated,
        stderr_truncated=run_phase.stderr_truncated,
    )


def _compile_failure(phase: PhaseOutcome, limits: Limits) -> ExecResult:
    """The compiler's output (stdout and stderr merged in order) is the diagnostic."""
    if phase.oom_killed:
        verdict = Verdict.MEMORY_LIMIT
        note = f"compiler ran out of memory (limit {_mib(limits.memory_limit_bytes)})"
    elif phase.timed_out:
        verdict = Verdict.TIMEOUT
        note = f"compilation exceeded its time limit of {limits.compile_time_limit_s:g} s"
    else:
        verdict, note = Verdict.COMPILE_ERROR, ""
        if phase.overflowed:
            note = f"compiler output cut at {limits.output_limit_bytes} bytes"
    return ExecResult(
        verdict,
        exit_code=phase.exit_code,
        compile_ms=phase.duration_ms,
        diag=phase.stdout + (f"[sandbox] {note}\n".encode() if note else b""),
        diag_truncated=phase.overflowed,
    )


def _run_verdict(phase: PhaseOutcome, limits: Limits) -> tuple[Verdict, str]:
    if phase.oom_killed:
        note = f"program ran out of memory (limit {_mib(limits.memory_limit_bytes)})"
        return Verdict.MEMORY_LIMIT, f"[sandbox] {note}\n"
    if phase.overflowed:
        note = f"output exceeded {limits.output_limit_bytes} bytes; the program was stopped"
        return Verdict.OUTPUT_LIMIT, f"[sandbox] {note}\n"
    if phase.timed_out:
        note = f"program exceeded its time limit of {limits.run_time_limit_s:g} s"
        return Verdict.TIMEOUT, f"[sandbox] {note}\n"
    if phase.exit_code:
        return Verdict.RUNTIME_ERROR, _exit_note(phase.exit_code)
    return Verdict.OK, ""


def _exit_note(exit_code: int) -> str:
    if exit_code > 128:
        return f"[sandbox] program was killed by signal {exit_code - 128}\n"
    return f"[sandbox] program exited with status {exit_code}\n"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"
