"""The few lines of shell that run each phase inside a container, and how to read them. Pure.

Every phase is one ``docker exec`` of ``bash -c DRIVER`` (no script is baked into the image, so
the image is a plain toolchain and the driver is versioned with this code). The driver:

1. if the phase carries the source, copies exactly ``code_bytes`` bytes of its stdin into the
   source file (``head -c`` never reads past its count), leaving the rest of stdin to the
   program: code and stdin travel on one stream, no bind mount, no ``docker cp``;
2. starts the program with stdout and stderr on FIFOs, each drained by an unbuffered
   ``head -c CAP+1``: the output is capped *inside* the container, so a 100 MB flood never
   reaches the engine (an engine whose client stops reading a flooding stream hangs, see
   docs/SECURITY.md). One byte beyond the cap tells the host the stream was cut; a writer
   past the cap gets SIGPIPE. The host enforces the same cap on what it reads (a program
   can reach the exec's own pipes through /proc, bypassing the FIFOs): past the cap it
   closes the stream and destroys the container;
3. exits with the program's status. Its own stderr is dropped (bash would otherwise add
   "Killed" lines to the program's stderr), so the only output is the program's.

The compile phase merges the compiler's stderr into stdout, so diagnostics stay in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncrox.sandbox.languages import Plan

WORKDIR = "/sandbox"
# The FIFOs live in the work dir (the root file system is read-only), named per driver.
FIFO_PREFIX = f"{WORKDIR}/.syncrox"
DRIVER_FAILED = 251  # the driver could not set the phase up (its exit status)

DRIVER = f"""
cap=$1 code_bytes=$2 source=$3 merge=$4
shift 4
exec 3>&2 2>/dev/null
out={FIFO_PREFIX}-out-$$ err={FIFO_PREFIX}-err-$$
mkfifo "$out" "$err" || exit {DRIVER_FAILED}
if [ "$code_bytes" != - ]; then head -c "$code_bytes" >"$source" || exit {DRIVER_FAILED}; fi
stdbuf -o0 head -c "$cap" <"$out" &
if [ "$merge" = 1 ]; then
    "$@" >"$out" 2>&1 3>&-
else
    stdbuf -o0 head -c "$cap" <"$err" >&3 &
    "$@" >"$out" 2>"$err" 3>&-
fi
status=$?
wait
exit $status
"""

# Reads the OOM-kill counter of the container's memory cgroup (v1, else v2). The container is
# fresh for every job, so any OOM kill it counts happened in this job.
OOM_PROBE = (
    "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null"
    " || cat /sys/fs/cgroup/memory.events 2>/dev/null || true"
)

ENVIRONMENT = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    f"HOME={WORKDIR}",
    f"TMPDIR={WORKDIR}",
)


def driver_argv(
    command: Sequence[str],
    *,
    output_limit_bytes: int,
    source: str | None,
    code_bytes: int,
    merge: bool,
) -> list[str]:
    """``bash -c DRIVER`` for one phase. ``source`` is ``None`` when the phase carries no code."""
    if source is not None and ("/" in source or source.startswith(".")):
        raise ValueError(f"source file name {source!r} must be a plain name")
    return [
        "bash",
        "-c",
        DRIVER,
        "syncrox-driver",
        str(output_limit_bytes + 1),
        str(code_bytes) if source is not None else "-",
        source or "-",
        "1" if merge else "0",
        *command,
    ]


def compile_argv(plan: Plan, *, output_limit_bytes: int, code_bytes: int) -> list[str] | None:
    if plan.compile_argv is None:
        return None
    return driver_argv(
        plan.compile_argv,
        output_limit_bytes=output_limit_bytes,
        source=plan.source,
        code_bytes=code_bytes,
        merge=True,
    )


def run_argv(plan: Plan, *, output_limit_bytes: int, code_bytes: int) -> list[str]:
    """The run phase carries the source itself when there was no compile phase."""
    carries_code = plan.compile_argv is None
    return driver_argv(
        plan.run_argv,
        output_limit_bytes=output_limit_bytes,
        source=plan.source if carries_code else None,
        code_bytes=code_bytes,
        merge=False,
    )


def parse_oom_kills(text: bytes) -> int:
    """The ``oom_kill`` count from ``memory.oom_control`` or ``memory.events`` (0 if absent)."""
    for line in text.decode("ascii", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value.strip())
    return 0
