"""The code-execution line protocol (TCP 9012): commands, replies, parsers. Sans-IO.

    HELLO <user> <room> [<token>]           -> OK HELLO <room> <user>       (admission)
    AUTH <token>                            -> OK HELLO <room> <user>       (admission by token)
    LANGS                                   -> LANGS python c cpp java
    RUN <lang> <code_bytes> <stdin_bytes>   then the code, then the stdin (raw bytes)
                                            -> RESULT <id> <verdict> <exit> <compile_ms>
                                               <run_ms> <truncated> <diag_bytes>
                                               <stdout_bytes> <stderr_bytes>,
                                               then diag, stdout, stderr (raw bytes)
    HISTORY [<limit>]                       -> HISTORY <n>, then n x ENTRY ... (newest first)
    SHOW <id>                               -> ENTRY ..., then code, diag, stdout, stderr,
                                               stdin (raw bytes)
    PING                                    -> PONG
    BYE                                     -> OK BYE
    anything wrong                          -> ERR <code> <text>

    ENTRY <id> <at_ms> <user> <lang> <verdict> <exit> <compile_ms> <run_ms> <truncated>
          <code_bytes> <diag_bytes> <stdout_bytes> <stderr_bytes> <stdin_bytes>

A field that does not apply is ``-`` (no exit status after a timeout, no compile time for
Python). ``<truncated>`` is ``-`` or a comma-separated subset of ``diag,stdout,stderr``; in an
``ENTRY`` it may also name ``stdin``: the history kept only the first bytes of the run's stdin
(``exec.history_stdin_bytes``), and ``<stdin_bytes>`` is the size of what it kept.

The bodies of a ``RUN`` are read in full whenever its sizes are acceptable, even if the
request is then refused (unknown language, not admitted, BUSY), so they are never parsed as
commands. A ``RUN`` whose sizes cannot be trusted (wrong word count, malformed, above the
limits) is fatal: the server answers and closes, as the bodies' end cannot be found.
Byte-level description: docs/PROTOCOL.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncrox.errors import (
    BAD_ARGUMENT,
    BAD_COMMAND,
    ProtocolError,
    RemoteProtocolError,
)
from syncrox.protocol.commands import (
    ADMISSION_ARITY,
    ADMISSION_USAGE,
    checked_command,
    parse_admission,
)

# Re-exported: these commands are part of this protocol too.
from syncrox.protocol.commands import Auth as Auth
from syncrox.protocol.commands import Bye as Bye
from syncrox.protocol.commands import Hello as Hello
from syncrox.protocol.commands import Langs as Langs
from syncrox.protocol.commands import Ping as Ping
from syncrox.protocol.framing import parse_size
from syncrox.protocol.names import validate_user
from syncrox.sandbox.model import ExecResult, Language, Verdict

BAD_LANGUAGE = "BAD_LANGUAGE"
DEFAULT_HISTORY_LIMIT = 20
MAX_ID = 2**63 - 1
MAX_DECIMAL_DIGITS = 19
NONE = "-"
STREAM_NAMES = ("diag", "stdout", "stderr")
# An ENTRY's <truncated> may also say that the history kept only a prefix of the stdin.
STDIN = "stdin"
ENTRY_TRUNCATED_NAMES = (*STREAM_NAMES, STDIN)
# What a client accepts in one listing / reply body before calling the server broken.
MAX_LISTED = 10_000
MAX_REPLY_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RunHeader:
    """``RUN`` as far as its line goes: the language is checked once the bodies are read."""

    language: str
    code_bytes: int
    stdin_bytes: int


@dataclass(frozen=True)
class Run:
    language: Language
    code: bytes
    stdin: bytes


@dataclass(frozen=True)
class History:
    limit: int


@dataclass(frozen=True)
class Show:
    run_id: int


ExecCommand = Hello | Auth | Langs | RunHeader | History | Show | Ping | Bye

_USAGE = {
    **ADMISSION_USAGE,
    "RUN": "RUN <lang> <code_bytes> <stdin_bytes>",
    "HISTORY": "HISTORY [<limit>]",
    "SHOW": "SHOW <id>",
    "PING": "PING",
    "BYE": "BYE",
}
_ARITY = {
    **ADMISSION_ARITY,
    "RUN": (3, 3),
    "HISTORY": (0, 1),
    "SHOW": (1, 1),
    "PING": (0, 0),
    "BYE": (0, 0),
}


def parse_exec_command(
    line: str, *, max_code_bytes: int, max_stdin_bytes: int, history_page_max: int
) -> ExecCommand:
    """Parse one client line; raise only ``RemoteProtocolError`` (fatal for a bad RUN)."""
    # A RUN we cannot read announces bodies we cannot skip: closing is the only safe end.
    word, args = checked_command(line, _ARITY, _USAGE, fatal={"RUN"})
    admission = parse_admission(word, args)
    if admission is not None:
        return admission
    match word:
        case "RUN":
            return _run_header(args, max_code_bytes, max_stdin_bytes)
        case "HISTORY":
            limit = _decimal(args[0], "limit") if args else DEFAULT_HISTORY_LIMIT
            return History(max(1, min(limit, history_page_max)))
        case "SHOW":
            return Show(_decimal(args[0], "id"))
        case "PING":
            return Ping()
        case _:
            return Bye()


def _run_header(args: list[str], max_code_bytes: int, max_stdin_bytes: int) -> RunHeader:
    try:
        code_bytes = parse_size(args[1], limit=max_code_bytes, what="code size")
        stdin_bytes = parse_size(args[2], limit=max_stdin_bytes, what="stdin size")
    except ProtocolError as exc:
        raise RemoteProtocolError(exc.code, exc.message, fatal=True) from None
    return RunHeader(args[0][:16], code_bytes, stdin_bytes)


def complete_run(header: RunHeader, code: bytes, stdin: bytes) -> Run:
    """The request, once both bodies have been read; refuses an unknown language."""
    try:
        language = Language(header.language.lower())
    except ValueError:
        known = ", ".join(Language.names())
        raise RemoteProtocolError(BAD_LANGUAGE, f"unknown language; use one of {known}") from None
    return Run(language, code, stdin)


def _decimal(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > MAX_DECIMAL_DIGITS:
        raise RemoteProtocolError(BAD_ARGUMENT, f"{what} must be a decimal number")
    value = int(text)
    if value > MAX_ID:
        raise RemoteProtocolError(BAD_ARGUMENT, f"{what} is too large")
    return value


# ---------------------------------------------------------------------------------------
# Replies (formatted by the server, parsed by the client)


@dataclass(frozen=True)
class ResultHeader:
    """A ``RESULT`` line: everything but the three bodies, whose sizes it announces."""

    run_id: int | None
    verdict: Verdict
    exit_code: int | None
    compile_ms: int | None
    run_ms: int | None
    truncated: tuple[str, ...]
    diag_bytes: int
    stdout_bytes: int
    stderr_bytes: int


@dataclass(frozen=True)
class Entry:
    """An ``ENTRY`` line of the history: one past run, its bodies described by size (the
    stdin as the history kept it)."""

    run_id: int
    at_ms: int
    user: str
    language: Language
    verdict: Verdict
    exit_code: int | None
    compile_ms: int | None
    run_ms: int | None
    truncated: tuple[str, ...]
    code_bytes: int
    diag_bytes: int
    stdout_bytes: int
    stderr_bytes: int
    stdin_bytes: int


def format_langs() -> str:
    return " ".join(["LANGS", *Language.names()])


def format_hello(room: str, user: str) -> str:
    return f"OK HELLO {room} {user}"


def format_result(run_id: int | None, result: ExecResult) -> str:
    fields = [
        _opt(run_id),
        result.verdict.value,
        _opt(result.exit_code),
        _opt(result.compile_ms),
        _opt(result.run_ms),
        _flags(result.truncated),
        str(len(result.diag)),
        str(len(result.stdout)),
        str(len(result.stderr)),
    ]
    return " ".join(["RESULT", *fields])


def format_entry(entry: Entry) -> str:
    fields = [
        str(entry.run_id),
        str(entry.at_ms),
        entry.user,
        entry.language.value,
        entry.verdict.value,
        _opt(entry.exit_code),
        _opt(entry.compile_ms),
        _opt(entry.run_ms),
        _flags(entry.truncated),
        str(entry.code_bytes),
        str(entry.diag_bytes),
        str(entry.stdout_bytes),
        str(entry.stderr_bytes),
        str(entry.stdin_bytes),
    ]
    return " ".join(["ENTRY", *fields])


def parse_result(line: str, *, max_body_bytes: int = MAX_REPLY_BODY_BYTES) -> ResultHeader:
    """Parse a ``RESULT`` line from a server (untrusted: bounded, ``RemoteProtocolError``)."""
    parts = expect_reply(line, "RESULT", 9)
    run_id = _opt_int(parts[0], "id", signed=False)
    sizes = [parse_size(text, limit=max_body_bytes, what="body size") for text in parts[6:9]]
    return ResultHeader(
        run_id,
        _verdict(parts[1]),
        _opt_int(parts[2], "exit", signed=True),
        _opt_int(parts[3], "compile_ms", signed=False),
        _opt_int(parts[4], "run_ms", signed=False),
        _parse_flags(parts[5], STREAM_NAMES),
        *sizes,
    )


def parse_entry(line: str, *, max_body_bytes: int = MAX_REPLY_BODY_BYTES) -> Entry:
    """Parse an ``ENTRY`` line from a server (untrusted: bounded, ``RemoteProtocolError``)."""
    parts = expect_reply(line, "ENTRY", 14)
    run_id, at_ms = _decimal(parts[0], "id"), _decimal(parts[1], "at_ms")
    try:
        language = Language(parts[3])
    except ValueError:
        raise RemoteProtocolError(BAD_LANGUAGE, "unknown language in ENTRY") from None
    sizes = [parse_size(text, limit=max_body_bytes, what="body size") for text in parts[9:14]]
    return Entry(
        run_id,
        at_ms,
        validate_user(parts[2]),
        language,
        _verdict(parts[4]),
        _opt_int(parts[5], "exit", signed=True),
        _opt_int(parts[6], "compile_ms", signed=False),
        _opt_int(parts[7], "run_ms", signed=False),
        _parse_flags(parts[8], ENTRY_TRUNCATED_NAMES),
        *sizes,
    )


def parse_count(line: str, word: str, *, limit: int = MAX_LISTED) -> int:
    """``HISTORY <n>``, with ``n`` at most ``limit``."""
    (count,) = expect_reply(line, word, 1)
    value = _decimal(count, "count")
    if value > limit:
        raise RemoteProtocolError(BAD_ARGUMENT, f"{word} announces {value} lines, over {limit}")
    return value


def expect_reply(line: str, word: str, count: int) -> list[str]:
    parts = line.split(" ")
    if parts[0] != word or len(parts) - 1 != count:
        raise RemoteProtocolError(BAD_COMMAND, f"expected a {word} reply, got {line[:60]!r}")
    return parts[1:]


def _verdict(text: str) -> Verdict:
    try:
        return Verdict(text)
    except ValueError:
        raise RemoteProtocolError(BAD_ARGUMENT, f"unknown verdict {text[:30]!r}") from None


def _opt(value: int | None) -> str:
    return NONE if value is None else str(value)


def _opt_int(text: str, what: str, *, signed: bool) -> int | None:
    if text == NONE:
        return None
    digits = text[1:] if signed and text.startswith("-") else text
    value = _decimal(digits, what)
    return -value if digits is not text else value


def _flags(names: tuple[str, ...]) -> str:
    return ",".join(names) if names else NONE


def _parse_flags(text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if text == NONE:
        return ()
    names = tuple(text.split(","))
    if not set(names) <= set(allowed) or len(set(names)) != len(names):
        raise RemoteProtocolError(BAD_ARGUMENT, f"truncated must name {', '.join(allowed)}")
    return names
