"""File Control's line protocol (TCP 9010): commands, replies, parsers. Sans-IO.

    HELLO <code> <user> [<token>]     -> OK HELLO <code> <user>          (admission)
    AUTH <token>                      -> OK HELLO <code> <user>          (admission by token)
    LIST                              -> FILES <n>, then n x
                                         FILE <size> <sha256> <unix> <user> <name>
    UPLOAD <size> <sha256> <name>     -> SESSION <session_id> <udp_port> <size> <sha256>
    DOWNLOAD <name>                   -> SESSION <session_id> <udp_port> <size> <sha256>
    DELETE <name>                     -> OK DELETED <name>
    TRANSFERS                         -> TRANSFERS <n>, then n x TRANSFER <id> <direction>
                                         <status> <algo> <codec> <size> <unix> <name>
    METRICS <transfer_id> csv|qlog    -> METRICS <format> <bytes>, then exactly <bytes> bytes
    EVENTS <session_id> <bytes>, then exactly <bytes> bytes (an upload's events, once)
                                      -> OK EVENTS <transfer_id> <n>
    PING                              -> PONG
    BYE                               -> OK BYE
    anything wrong                    -> ERR <code> <text>

Every command but HELLO, AUTH, PING and BYE needs admission first. A line starts with its
command word (a leading blank is ``BAD_COMMAND``). A file name is always the last argument
and runs to the end of the line (it may contain spaces), so in UPLOAD, DOWNLOAD and DELETE
every field is preceded by exactly one space and the name cannot begin with a blank:
otherwise ``DOWNLOAD  a.txt`` would ask for `` a.txt``. Other commands' words are separated
by runs of blanks, as in every service (``split_command``).

A ``<transfer_id>`` (TRANSFERS, METRICS) is *not* the ``session_id`` that opens the UDP
session: it is derived from it by a one-way hash (``transfer_id_of``), so every member of
the room can see and measure every transfer while only the member who asked for the ticket
holds the secret that can speak for it on UDP. Byte-level description: docs/PROTOCOL.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from syncrox.errors import BAD_ARGUMENT, BAD_COMMAND, RemoteProtocolError

# Re-exported: these commands are part of this protocol too.
from syncrox.protocol.commands import Bye as Bye
from syncrox.protocol.commands import Ping as Ping
from syncrox.protocol.commands import split_command
from syncrox.protocol.names import (
    validate_filename,
    validate_room_code,
    validate_token,
    validate_user,
)
from syncrox.protocol.rudp.packets import SESSION_ID_HEX_CHARS, SHA256_HEX_CHARS

METRICS_FORMATS = ("csv", "qlog")
TRANSFER_ID_CONTEXT = b"syncrox transfer id\x00"
MAX_SIZE_DIGITS = 15
_HEX = frozenset("0123456789abcdef")


# The header of a METRICS CSV body (docs/PROTOCOL.md, "Metrics"): the server writes it,
# clients check it.
CSV_COLUMNS = (
    "ts", "room", "file", "direction", "seq", "bytes", "rtt_ms", "srtt_ms", "rto_ms", "cwnd",
    "ssthresh", "event", "algo",
)  # fmt: skip


@dataclass(frozen=True)
class Hello:
    code: str
    user: str
    token: str | None = None


@dataclass(frozen=True)
class Auth:
    token: str


@dataclass(frozen=True)
class ListFiles:
    pass


@dataclass(frozen=True)
class Upload:
    size: int
    sha256: str
    name: str


@dataclass(frozen=True)
class Download:
    name: str


@dataclass(frozen=True)
class Delete:
    name: str


@dataclass(frozen=True)
class ListTransfers:
    pass


@dataclass(frozen=True)
class Metrics:
    transfer_id: str
    format: str


@dataclass(frozen=True)
class ReportEvents:
    """An uploading client's congestion events (``syncrox.protocol.files_events``); the
    body of ``size`` bytes follows the line."""

    session_id: str
    size: int


FilesCommand = (
    Hello
    | Auth
    | ListFiles
    | Upload
    | Download
    | Delete
    | ListTransfers
    | Metrics
    | ReportEvents
    | Ping
    | Bye
)
ADMISSION_FREE = (Hello, Auth, Ping, Bye)
_USAGE = {
    "HELLO": "HELLO <code> <user> [<token>]",
    "AUTH": "AUTH <token>",
    "LIST": "LIST",
    "UPLOAD": "UPLOAD <size> <sha256> <name>",
    "DOWNLOAD": "DOWNLOAD <name>",
    "DELETE": "DELETE <name>",
    "TRANSFERS": "TRANSFERS",
    "METRICS": "METRICS <transfer_id> csv|qlog",
    "EVENTS": "EVENTS <session_id> <bytes>",
    "PING": "PING",
    "BYE": "BYE",
}


def transfer_id_of(session_id: str) -> str:
    """The public id of the transfer a ``session_id`` opens: 32 hex digits of
    SHA-256("syncrox transfer id" NUL session_id). Knowing it does not reveal the session id."""
    digest = hashlib.sha256(TRANSFER_ID_CONTEXT + session_id.encode("ascii"))
    return digest.hexdigest()[:SESSION_ID_HEX_CHARS]


def parse_files_command(line: str, *, max_file_bytes: int) -> FilesCommand:
    """Parse one line from a File Control client; raise only ``RemoteProtocolError``."""
    if line[:1].isspace():
        # Named commands split at single spaces, so " DELETE a" would name "DELETE a".
        raise RemoteProtocolError(BAD_COMMAND, "a line starts with its command word")
    word, args = split_command(line)
    if word not in _USAGE:
        raise RemoteProtocolError(BAD_COMMAND, f"unknown command {word[:16]}; try {_known()}")
    if word in ("UPLOAD", "DOWNLOAD", "DELETE"):
        return _parse_named(word, line, max_file_bytes)
    if word == "EVENTS":
        return _parse_report(args)
    return _parse_words(word, args)


def _parse_report(args: list[str]) -> ReportEvents:
    """``EVENTS <session_id> <bytes>``. A body of unknown length follows: any refusal of
    the line is fatal (the connection closes), or its bytes would be read as commands."""
    try:
        match args:
            case [session_id, size] if size.isascii() and size.isdigit():
                if len(size) <= MAX_SIZE_DIGITS:
                    return ReportEvents(check_session_id(session_id, "a session id"), int(size))
        raise RemoteProtocolError(BAD_ARGUMENT, f"usage: {_USAGE['EVENTS']}")
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(exc.code, exc.message, fatal=True) from None


def _parse_words(word: str, args: list[str]) -> FilesCommand:
    match word, args:
        case "HELLO", [code, user]:
            return Hello(validate_room_code(code), validate_user(user))
        case "HELLO", [code, user, token]:
            return Hello(validate_room_code(code), validate_user(user), validate_token(token))
        case "AUTH", [token]:
            return Auth(validate_token(token))
        case "LIST", []:
            return ListFiles()
        case "TRANSFERS", []:
            return ListTransfers()
        case "METRICS", [transfer_id, fmt]:
            if fmt.lower() not in METRICS_FORMATS:
                raise RemoteProtocolError(BAD_ARGUMENT, "format must be csv or qlog")
            return Metrics(check_session_id(transfer_id), fmt.lower())
        case "PING", []:
            return Ping()
        case "BYE", []:
            return Bye()
    raise RemoteProtocolError(BAD_ARGUMENT, f"usage: {_USAGE[word]}")


def _parse_named(word: str, line: str, max_file_bytes: int) -> FilesCommand:
    # The name is the rest of the line after single spaces: it may itself hold spaces, so
    # a second blank before it cannot be told from part of the name and is refused.
    wanted = 3 if word == "UPLOAD" else 1
    parts = line.split(" ", wanted)
    if len(parts) != wanted + 1 or not parts[-1] or parts[-1][0].isspace():
        raise RemoteProtocolError(
            BAD_ARGUMENT, f"usage: {_USAGE[word]} (one space before each field)"
        )
    name = validate_filename(parts[-1])
    if word == "DOWNLOAD":
        return Download(name)
    if word == "DELETE":
        return Delete(name)
    return Upload(parse_file_size(parts[1], max_file_bytes), check_sha256(parts[2]), name)


def parse_file_size(text: str, limit: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > MAX_SIZE_DIGITS:
        raise RemoteProtocolError(BAD_ARGUMENT, "size must be a decimal byte count")
    size = int(text)
    if size > limit:
        raise RemoteProtocolError("TOO_LARGE", f"files are limited to {limit} bytes")
    return size


def check_sha256(text: str) -> str:
    if len(text) != SHA256_HEX_CHARS or not set(text) <= _HEX:
        raise RemoteProtocolError(BAD_ARGUMENT, "sha256 must be 64 lower-case hex digits")
    return text


def check_session_id(text: str, what: str = "a transfer id") -> str:
    if len(text) != SESSION_ID_HEX_CHARS or not set(text) <= _HEX:
        raise RemoteProtocolError(BAD_ARGUMENT, f"{what} is 32 lower-case hex digits")
    return text


def _known() -> str:
    return ", ".join(_USAGE)


# ---------------------------------------------------------------------------------------
# Replies (formatted by the server, parsed by the client)


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str
    created_unix: int
    uploaded_by: str
    name: str


@dataclass(frozen=True)
class SessionTicket:
    session_id: str
    udp_port: int
    size: int
    sha256: str


@dataclass(frozen=True)
class TransferEntry:
    transfer_id: str
    direction: str
    status: str
    algo: str
    codec: str
    size: int
    started_unix: int
    name: str


def format_file(entry: FileEntry) -> str:
    return f"FILE {entry.size} {entry.sha256} {entry.created_unix} {entry.uploaded_by} {entry.name}"


def format_session(ticket: SessionTicket) -> str:
    return f"SESSION {ticket.session_id} {ticket.udp_port} {ticket.size} {ticket.sha256}"


def format_transfer(entry: TransferEntry) -> str:
    return (
        f"TRANSFER {entry.transfer_id} {entry.direction} {entry.status} {entry.algo} "
        f"{entry.codec} {entry.size} {entry.started_unix} {entry.name}"
    )


def _fields(line: str, word: str, count: int) -> list[str]:
    parts = line.split(" ", count)
    if parts[0] != word or len(parts) != count + 1:
        raise RemoteProtocolError(BAD_COMMAND, f"expected a {word} reply, got {line[:60]!r}")
    return parts[1:]


def _number(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > MAX_SIZE_DIGITS:
        raise RemoteProtocolError(BAD_COMMAND, f"expected a number, got {text[:20]!r}")
    return int(text)


def parse_count(line: str, word: str) -> int:
    (count,) = _fields(line, word, 1)
    return _number(count)


def parse_file(line: str) -> FileEntry:
    size, sha, created, user, name = _fields(line, "FILE", 5)
    return FileEntry(
        _number(size), check_sha256(sha), _number(created), validate_user(user),
        validate_filename(name),
    )  # fmt: skip


def parse_session(line: str) -> SessionTicket:
    session_id, port, size, sha = _fields(line, "SESSION", 4)
    udp_port = _number(port)
    if not 0 < udp_port < 65536:
        raise RemoteProtocolError(BAD_COMMAND, "bad UDP port in SESSION")
    return SessionTicket(check_session_id(session_id), udp_port, _number(size), check_sha256(sha))


def parse_transfer(line: str) -> TransferEntry:
    tid, direction, status, algo, codec, size, started, name = _fields(line, "TRANSFER", 8)
    return TransferEntry(
        check_session_id(tid), _word(direction), _word(status), _word(algo), _word(codec),
        _number(size), _number(started), validate_filename(name),
    )  # fmt: skip


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:-")


def _word(text: str) -> str:
    """A short plain word (``upload``, ``failed:IDLE``, ``newreno``): a reply field the CLI
    prints, so never control characters a terminal would obey."""
    if not 0 < len(text) <= 32 or not set(text) <= _WORD_CHARS:
        raise RemoteProtocolError(BAD_COMMAND, f"expected a plain word, got {text[:20]!r}")
    return text


def parse_events_reply(line: str) -> tuple[str, int]:
    """``OK EVENTS <transfer_id> <n>``: the transfer the events were stored for, how many."""
    word, transfer_id, count = _fields(line, "OK", 3)
    if word != "EVENTS":
        raise RemoteProtocolError(BAD_COMMAND, f"expected an OK EVENTS reply, got {line[:60]!r}")
    return check_session_id(transfer_id), _number(count)


def parse_metrics_header(line: str) -> tuple[str, int]:
    fmt, size = _fields(line, "METRICS", 2)
    return fmt, _number(size)
