"""The Code Execution page's calls: languages, a run, the room's history and one past run.

Each call is one short connection (``backend.call``): ``LANGS`` needs no admission; the others
are admitted with the session's membership token (``AUTH``), so the server decides the room
and a page can never ask for another room's runs (the original listed every room's history).
Results reach the page as plain data (text decoded for display, verdicts as their names), so
views never touch ``syncrox`` types.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from backend import BackendError, call
from syncrox.client.endpoints import Endpoints
from syncrox.client.exec import ExecClient, RunReply, ShownRun
from syncrox.config import load_config
from syncrox.errors import BUSY, RequestRefused
from syncrox.protocol import exec as proto

# A run waits in the server's queue, then compiles (up to the compile limit, 15 s by
# default) and runs (5 s by default): generous, so only a dead server hits it.
RUN_TIMEOUT_S = 120.0
# The verdict the page shows as "unavailable, try later" (the wire's name, from its one place).
SANDBOX_UNAVAILABLE = proto.Verdict.SANDBOX_UNAVAILABLE.value


@dataclass(frozen=True)
class Limits:
    code_bytes: int
    stdin_bytes: int
    history_rows: int  # the most runs one HISTORY answers


@dataclass(frozen=True)
class Outcome:
    """What a run produced (its own run, or one from the history), ready to show."""

    run_id: int | None  # None: not recorded (SANDBOX_UNAVAILABLE)
    verdict: str
    exit_code: int | None
    compile_ms: int | None
    run_ms: int | None
    truncated: tuple[str, ...]
    diag: str
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.verdict == "OK"


@dataclass(frozen=True)
class Refused:
    """The service turned the run away without running it (``BUSY``): try again later."""

    code: str
    message: str


@dataclass(frozen=True)
class Row:
    """One run of the room's history, as the table shows it."""

    run_id: int
    at: str  # local time, to the second
    user: str
    language: str
    verdict: str
    exit_code: int | None
    compile_ms: int | None
    run_ms: int | None


@dataclass(frozen=True)
class Detail:
    row: Row
    code: str
    stdin: str  # what the room's history kept of the run's stdin
    stdin_cut: bool  # only its start was kept (or nothing: a run recorded before it was)
    outcome: Outcome


def limits() -> Limits:
    """The request limits, from the config (the same source the server reads by default)."""
    config = load_config().exec
    return Limits(config.max_code_bytes, config.max_stdin_bytes, config.history_page_max)


@asynccontextmanager
async def admitted(where: Endpoints, token: str) -> AsyncIterator[ExecClient]:
    """An exec connection admitted with the session's token: the server decides the room."""
    async with ExecClient.connect(where.host, where.port("exec")) as client:
        await client.auth(token)
        yield client


def languages() -> list[str]:
    """The languages the service runs, as it lists them (``LANGS``)."""

    async def op(where: Endpoints) -> list[str]:
        async with ExecClient.connect(where.host, where.port("exec")) as client:
            return await client.languages()

    names = call(op)
    if not names:
        raise BackendError("the code-execution service lists no languages")
    return names


def run(token: str, language: str, code: str, stdin: str) -> Outcome | Refused:
    """Run ``code`` in the caller's room; ``Refused`` when the queue is full."""
    code_bytes, stdin_bytes = code.encode(), stdin.encode()
    _check_sizes(code_bytes, stdin_bytes)

    async def op(where: Endpoints) -> Outcome | Refused:
        async with admitted(where, token) as client:
            try:
                reply = await client.run(language, code_bytes, stdin_bytes)
            except RequestRefused as exc:
                if exc.code == BUSY:  # a plain "later", not a failure
                    return Refused(exc.code, exc.message)
                raise
            return _outcome(reply)

    return call(op, timeout_s=RUN_TIMEOUT_S)


def history(token: str, limit: int) -> list[Row]:
    """The newest ``limit`` runs of the caller's room (the token decides the room)."""

    async def op(where: Endpoints) -> list[Row]:
        async with admitted(where, token) as client:
            return [_row(entry) for entry in await client.history(limit)]

    return call(op)


def show(token: str, run_id: int) -> Detail:
    """One run of the caller's room: its code, its stdin (as the history kept it) and its
    outputs."""

    async def op(where: Endpoints) -> ShownRun:
        async with admitted(where, token) as client:
            return await client.show(run_id)

    shown = call(op)
    entry = shown.entry
    outcome = Outcome(
        entry.run_id,
        entry.verdict.value,
        entry.exit_code,
        entry.compile_ms,
        entry.run_ms,
        tuple(name for name in entry.truncated if name != proto.STDIN),
        _text(shown.diag),
        _text(shown.stdout),
        _text(shown.stderr),
    )
    stdin_cut = proto.STDIN in entry.truncated
    return Detail(_row(entry), _text(shown.code), _text(shown.stdin), stdin_cut, outcome)


def _check_sizes(code: bytes, stdin: bytes) -> None:
    # The server refuses these too, but then closes the connection: say it before sending.
    limit = limits()
    if not code.strip():
        raise BackendError("there is no code to run")
    if len(code) > limit.code_bytes:
        raise BackendError(f"the code is {len(code)} bytes; the limit is {limit.code_bytes}")
    if len(stdin) > limit.stdin_bytes:
        raise BackendError(f"the input is {len(stdin)} bytes; the limit is {limit.stdin_bytes}")


def _outcome(reply: RunReply) -> Outcome:
    header = reply.header
    return Outcome(
        header.run_id,
        header.verdict.value,
        header.exit_code,
        header.compile_ms,
        header.run_ms,
        header.truncated,
        _text(reply.diag),
        _text(reply.stdout),
        _text(reply.stderr),
    )


def _row(entry: proto.Entry) -> Row:
    at = datetime.datetime.fromtimestamp(entry.at_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
    return Row(
        entry.run_id,
        at,
        entry.user,
        entry.language.value,
        entry.verdict.value,
        entry.exit_code,
        entry.compile_ms,
        entry.run_ms,
    )


def _text(data: bytes) -> str:
    # Programs may print anything; undecodable bytes become U+FFFD rather than an error.
    return data.decode("utf-8", "replace")
