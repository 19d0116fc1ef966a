"""The collaborative editor's wire protocol (TCP 9011): lines, frames, y-protocols. Sans-IO.

    HELLO <user> <room> [<token>]     -> OK HELLO <room> <user>                  (admission)
    AUTH <token>                      -> OK HELLO <room> <user>                  (by token)
    LANGS                             -> LANGS python c cpp java
    OPEN <lang>                       -> OPENED <lang> <max_document_bytes> <max_update_bytes>
                                                <max_messages>
    YMSG <size>                       then <size> bytes: one or more y-protocols messages
    PING                              -> PONG
    BYE                               -> OK BYE                                  (then close)
    anything wrong                    -> ERR <code> <text>

The server sends ``YMSG <size>`` frames too, and ``ACK <n>``: every update carried by the
first ``n`` frames this connection sent since ``OPENED`` is durably stored (or was refused
with an ``ERR`` line).

A frame body is a concatenation of messages in the y-protocols encoding (lib0 varints), so
a standard Yjs client can speak it over another transport::

    sync:      varUint(0) varUint(0 step 1 | 1 step 2 | 2 update) varUint8Array(payload)
    awareness: varUint(1) varUint8Array(varUint(n) n x (varUint(client) varUint(clock)
                                                        varString(JSON state)))
    query awareness: varUint(3)

Step 1 carries a state vector, step 2 and update carry a Yjs update (v1 encoding). Every
decoder here is bounded by the bytes it is given and raises only ``RemoteProtocolError``.
Byte-level description and examples: docs/PROTOCOL.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncrox.errors import BAD_ARGUMENT, BAD_COMMAND, RemoteProtocolError
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
from syncrox.protocol.names import validate_room_code, validate_user

BAD_LANGUAGE = "BAD_LANGUAGE"
BAD_MESSAGE = "BAD_MESSAGE"  # a frame that is not well-formed y-protocols messages
BAD_AWARENESS = "BAD_AWARENESS"  # an awareness state refused (the document is not affected)
BAD_UPDATE = "BAD_UPDATE"  # an update that cannot be applied (undecodable, missing deps)
DOC_TOO_LARGE = "DOC_TOO_LARGE"
NOT_OPEN = "NOT_OPEN"

# Canonical language names, in the order LANGS lists them, and the spellings accepted.
LANGUAGES = ("python", "c", "cpp", "java")
_ALIASES = {"py": "python", "c++": "cpp", "cc": "cpp", "cxx": "cpp"}

MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_QUERY_AWARENESS = 3
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

# lib0 writes numbers up to 2**53 - 1 (JavaScript's safe integers): at most 8 bytes.
MAX_VAR_UINT = 2**53 - 1
MAX_VAR_UINT_BYTES = 8
MAX_DECIMAL_DIGITS = 19


def parse_language(text: str) -> str:
    """The canonical name of a language (``py`` -> ``python``), case-insensitive."""
    lowered = text.lower()
    name = _ALIASES.get(lowered, lowered)
    if name not in LANGUAGES:
        raise RemoteProtocolError(BAD_LANGUAGE, f"unknown language; known: {' '.join(LANGUAGES)}")
    return name


# ---------------------------------------------------------------------------------------
# Lines from a client


@dataclass(frozen=True)
class Open:
    language: str


@dataclass(frozen=True)
class FrameHeader:
    """``YMSG <size>``: ``size`` bytes of y-protocols messages follow."""

    size: int


CollabCommand = Hello | Auth | Langs | Open | FrameHeader | Ping | Bye

_ARITY: dict[str, tuple[int, int]] = {
    **ADMISSION_ARITY,
    "OPEN": (1, 1),
    "YMSG": (1, 1),
    "PING": (0, 0),
    "BYE": (0, 0),
}

_USAGE = {
    **ADMISSION_USAGE,
    "OPEN": "OPEN <lang>",
    "YMSG": "YMSG <size>",
    "PING": "PING",
    "BYE": "BYE",
}


def parse_collab_command(line: str, *, max_frame_bytes: int) -> CollabCommand:
    """Parse one line from a client. A ``YMSG`` whose size cannot be trusted is *fatal*:
    its body's end is unknown, so the connection must close after the ``ERR``."""
    word, args = checked_command(line, _ARITY, _USAGE, fatal={"YMSG"})
    admission = parse_admission(word, args)
    if admission is not None:
        return admission
    match word:
        case "OPEN":
            return Open(parse_language(args[0]))
        case "YMSG":
            return FrameHeader(_frame_size(args[0], max_frame_bytes))
        case "PING":
            return Ping()
        case _:
            return Bye()


def _frame_size(text: str, limit: int) -> int:
    try:
        return parse_size(text, limit=limit, what="frame size")
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(exc.code, exc.message, fatal=True) from None


# ---------------------------------------------------------------------------------------
# Lines from the server (formatted by the server, parsed by the client library)


@dataclass(frozen=True)
class Welcome:
    room: str
    user: str


@dataclass(frozen=True)
class LangList:
    languages: tuple[str, ...]


@dataclass(frozen=True)
class Opened:
    """The document is open; the numbers are the limits a client must respect."""

    language: str
    max_document_bytes: int
    max_update_bytes: int  # of one YMSG body
    max_messages: int  # per YMSG frame


@dataclass(frozen=True)
class Ack:
    frames: int


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class Goodbye:
    pass


ServerLine = Welcome | LangList | Opened | FrameHeader | Ack | Pong | Goodbye


def format_hello(room: str, user: str) -> str:
    return f"OK HELLO {room} {user}"


def format_langs() -> str:
    return " ".join(["LANGS", *LANGUAGES])


def format_opened(
    language: str, max_document_bytes: int, max_update_bytes: int, max_messages: int
) -> str:
    return f"OPENED {language} {max_document_bytes} {max_update_bytes} {max_messages}"


def format_frame_header(size: int) -> str:
    return f"YMSG {size}"


def format_ack(frames: int) -> str:
    return f"ACK {frames}"


def parse_server_line(line: str, *, max_frame_bytes: int) -> ServerLine:
    """Parse a non-``ERR`` line from the server (``ERR`` is ``framing.parse_error``'s)."""
    parts = line.split(" ")
    match parts:
        case ["OK", "HELLO", room, user]:
            return Welcome(validate_room_code(room), validate_user(user))
        case ["LANGS", *names]:
            return LangList(tuple(parse_language(name) for name in names))
        case ["OPENED", language, max_document, max_update, max_messages]:
            return Opened(
                parse_language(language),
                _count(max_document, "max_document_bytes"),
                _count(max_update, "max_update_bytes"),
                _count(max_messages, "max_messages"),
            )
        case ["YMSG", size]:
            return FrameHeader(_frame_size(size, max_frame_bytes))
        case ["ACK", frames]:
            return Ack(_count(frames, "frame count"))
        case ["PONG"]:
            return Pong()
        case ["OK", "BYE"]:
            return Goodbye()
    raise RemoteProtocolError(BAD_COMMAND, f"unexpected line from the server: {line[:60]!r}")


def _count(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > MAX_DECIMAL_DIGITS:
        raise RemoteProtocolError(BAD_ARGUMENT, f"{what} must be a decimal number")
    return int(text)


# ---------------------------------------------------------------------------------------
# y-protocols messages


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """The sender's state vector: "send me what I lack"."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """The answer to a step 1: every change the asker lacks."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """An incremental change."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state. ``state`` is JSON text; ``"null"`` means it left."""

    client_id: int
    clock: int
    state: str

    @property
    def removed(self) -> bool:
        return self.state == "null"


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    entries: tuple[AwarenessEntry, ...]


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """ "Send me every awareness state you know"."""


YMessage = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness


def write_var_uint(value: int) -> bytes:
    if not 0 <= value <= MAX_VAR_UINT:
        raise ValueError(f"varUint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a lib0 varUint at ``pos``; return it and the position after it."""
    value = shift = 0
    end = min(len(data), pos + MAX_VAR_UINT_BYTES)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value > MAX_VAR_UINT:
                break
            return value, pos
        shift += 7
    raise RemoteProtocolError(BAD_MESSAGE, "truncated or oversized varUint")


def read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """Decode a lib0 varUint8Array (length, then that many bytes)."""
    length, pos = read_var_uint(data, pos)
    end = pos + length
    if end > len(data):
        raise RemoteProtocolError(BAD_MESSAGE, "byte array runs past the end of the frame")
    return data[pos:end], end


def write_var_bytes(payload: bytes) -> bytes:
    return write_var_uint(len(payload)) + payload


def decode_frame(
    body: bytes, *, max_messages: int, max_awareness_entries: int | None = None
) -> list[YMessage]:
    """Every message of a frame body, or ``RemoteProtocolError`` if any is malformed (then
    nothing of the frame may be used). The server bounds the entries of a client's
    awareness updates (``max_awareness_entries``); a client takes the server's whole."""
    messages: list[YMessage] = []
    pos = 0
    while pos < len(body):
        if len(messages) >= max_messages:
            raise RemoteProtocolError(BAD_MESSAGE, f"more than {max_messages} messages in a frame")
        message, pos = _decode_message(body, pos, max_awareness_entries)
        messages.append(message)
    if not messages:
        raise RemoteProtocolError(BAD_MESSAGE, "an empty frame")
    return messages


def _decode_message(
    body: bytes, pos: int, max_awareness_entries: int | None
) -> tuple[YMessage, int]:
    kind, pos = read_var_uint(body, pos)
    if kind == MESSAGE_SYNC:
        step, pos = read_var_uint(body, pos)
        payload, pos = read_var_bytes(body, pos)
        if step == SYNC_UPDATE:
            return SyncUpdate(payload), pos
        if step == SYNC_STEP2:
            return SyncStep2(payload), pos
        if step == SYNC_STEP1:
            decode_state_vector(payload)
            return SyncStep1(payload), pos
        raise RemoteProtocolError(BAD_MESSAGE, f"unknown sync message type {step}")
    if kind == MESSAGE_AWARENESS:
        payload, pos = read_var_bytes(body, pos)
        return AwarenessUpdate(decode_awareness(payload, max_awareness_entries)), pos
    if kind == MESSAGE_QUERY_AWARENESS:
        return QueryAwareness(), pos
    raise RemoteProtocolError(BAD_MESSAGE, f"unknown message type {kind}")


def decode_state_vector(payload: bytes) -> dict[int, int]:
    """A Yjs state vector: ``varUint(n)`` then ``n`` pairs ``varUint(client) varUint(clock)``."""
    count, pos = read_var_uint(payload, 0)
    if count > len(payload) // 2:
        raise RemoteProtocolError(BAD_MESSAGE, "state vector claims more entries than it holds")
    clocks: dict[int, int] = {}
    for _ in range(count):
        client, pos = read_var_uint(payload, pos)
        clock, pos = read_var_uint(payload, pos)
        clocks[client] = clock
    if pos != len(payload):
        raise RemoteProtocolError(BAD_MESSAGE, "trailing bytes after the state vector")
    return clocks


def decode_awareness(payload: bytes, max_entries: int | None = None) -> tuple[AwarenessEntry, ...]:
    count, pos = read_var_uint(payload, 0)
    if count > len(payload) // 3:
        raise RemoteProtocolError(BAD_MESSAGE, "awareness update claims more entries than it holds")
    if max_entries is not None and count > max_entries:
        raise RemoteProtocolError(
            BAD_MESSAGE, f"an awareness update holds at most {max_entries} entries"
        )
    entries = []
    for _ in range(count):
        client, pos = read_var_uint(payload, pos)
        clock, pos = read_var_uint(payload, pos)
        raw, pos = read_var_bytes(payload, pos)
        try:
            state = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(BAD_MESSAGE, "awareness state is not UTF-8") from None
        entries.append(AwarenessEntry(client, clock, state))
    if pos != len(payload):
        raise RemoteProtocolError(BAD_MESSAGE, "trailing bytes after the awareness update")
    return tuple(entries)


def encode_awareness(entries: tuple[AwarenessEntry, ...] | list[AwarenessEntry]) -> bytes:
    parts = [write_var_uint(len(entries))]
    for entry in entries:
        parts += (
            write_var_uint(entry.client_id),
            write_var_uint(entry.clock),
            write_var_bytes(entry.state.encode("utf-8")),
        )
    return b"".join(parts)


# Prefixes of the three sync messages, precomputed: updates are the hot path.
_SYNC_PREFIX = {
    SyncStep1: bytes((MESSAGE_SYNC, SYNC_STEP1)),
    SyncStep2: bytes((MESSAGE_SYNC, SYNC_STEP2)),
    SyncUpdate: bytes((MESSAGE_SYNC, SYNC_UPDATE)),
}


def encode_message(message: YMessage) -> bytes:
    match message:
        case SyncStep1(payload) | SyncStep2(payload) | SyncUpdate(payload):
            return _SYNC_PREFIX[type(message)] + write_var_bytes(payload)
        case AwarenessUpdate(entries):
            return bytes((MESSAGE_AWARENESS,)) + write_var_bytes(encode_awareness(entries))
        case QueryAwareness():
            return bytes((MESSAGE_QUERY_AWARENESS,))


def encode_update(update: bytes) -> bytes:
    """``encode_message(SyncUpdate(update))`` without building the record."""
    return _SYNC_PREFIX[SyncUpdate] + write_var_bytes(update)


def encode_frame(messages: list[bytes]) -> bytes:
    """``YMSG <size>`` and the concatenated, already encoded messages."""
    body = b"".join(messages)
    return f"YMSG {len(body)}\n".encode("ascii") + body
