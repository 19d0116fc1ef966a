"""The chat service's line protocol (TCP 9009): commands, replies, broadcasts. Sans-IO.

Client to server (the seed's commands, then the documented extras)::

    HELLO <user> <room> [<token>]          -> OK HELLO <room> <user> <last-id>
    MSG <content>                          -> OK MSG <id>      (and the MSG broadcast)
    IMG <file> <base64>                    -> OK IMG <id>      (and the IMG broadcast)
    GET_IMG <file> | GET_IMG <id>          -> IMG_DATA <id> <size> <type> <file> <base64>
    HISTORY [since <id>] [limit <n>]       -> HIST <event> ... then HISTORY_END <n> <more>
    WHO                                    -> USERS <user> ...
    TYPING                                 -> OK TYPING        (others get TYPING <user>)
    PING                                   -> PONG
    BYE                                    -> OK BYE           (then the server closes)
    anything refused                       -> ERR <code> <text>

Broadcast to every connection in the room, the sender's included, in id order::

    MSG <id> <time> <user> <content>
    IMG <id> <time> <user> <size> <type> <sha256> <file>

and presence notices to the others: ``JOINED <user>``, ``LEFT <user>``, ``TYPING <user>``.

Every request gets exactly one reply, in request order, so a client can match replies to
requests with a FIFO. ``IMG`` and ``IMG_DATA`` lines are streamed (see ``chat_frames``);
this module sees every other line whole. The byte-level description is docs/PROTOCOL.md.

Message content is kept exactly as the user wrote it (after UTF-8 validation); it is
refused, never altered, if it is empty or holds control characters. Escaping it for display
is the job of whoever renders it (the terminal client, the web UI).
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Final

from syncrox.errors import BAD_ARGUMENT, BAD_COMMAND, RemoteProtocolError
from syncrox.protocol.commands import COMMAND_WORD_MAX_CHARS

# Re-exported: these commands are part of this protocol too.
from syncrox.protocol.commands import Bye as Bye
from syncrox.protocol.commands import Hello as Hello
from syncrox.protocol.commands import Ping as Ping
from syncrox.protocol.names import (
    validate_filename,
    validate_room_code,
    validate_token,
    validate_user,
)

# Error codes of the chat service, in addition to the shared ones in ``syncrox.errors``.
ALREADY_JOINED: Final = "ALREADY_JOINED"
BAD_IMAGE: Final = "BAD_IMAGE"
OVERFLOW: Final = "OVERFLOW"

ID_MAX_DIGITS = 15  # ids, sizes and limits fit comfortably in SQLite's 64-bit integers
SHA256_HEX_CHARS = 64
HISTORY_DEFAULT_LIMIT = 50
SEPARATORS = " \t"

# Magic bytes of the image types the CDN accepts, and their MIME types.
IMAGE_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
SNIFF_BYTES = 12  # enough for every signature above and RIFF....WEBP


# ---------------------------------------------------------------------------------------
# Client commands


@dataclass(frozen=True)
class Msg:
    content: str


@dataclass(frozen=True)
class GetImage:
    """``GET_IMG`` by message id (all digits) or by file name (the newest of that name)."""

    image_id: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class History:
    since: int | None = None
    limit: int = HISTORY_DEFAULT_LIMIT


@dataclass(frozen=True)
class Who:
    pass


@dataclass(frozen=True)
class Typing:
    pass


ChatCommand = Hello | Msg | GetImage | History | Who | Typing | Ping | Bye

_USAGE = {
    "HELLO": "HELLO <user> <room> [<token>]",
    "MSG": "MSG <content>",
    "IMG": "IMG <file> <base64>",
    "GET_IMG": "GET_IMG <file> | GET_IMG <id>",
    "HISTORY": "HISTORY [since <id>] [limit <n>]",
    "WHO": "WHO",
    "TYPING": "TYPING",
    "PING": "PING",
    "BYE": "BYE",
}


def split_word(line: str) -> tuple[str, str]:
    """Split off the command word (letters and ``_``, case-insensitive) from the rest.

    Leading blanks are skipped; the word ends at the first space or tab, and exactly that
    one separator is dropped, so ``MSG`` content keeps any further blanks as written.
    """
    text = line.lstrip(SEPARATORS)
    end = len(text)
    for index, char in enumerate(text):
        if char in SEPARATORS:
            end = index
            break
    word, rest = text[:end], text[end + 1 :]
    if not word:
        raise RemoteProtocolError(BAD_COMMAND, "empty line")
    if (
        len(word) > COMMAND_WORD_MAX_CHARS
        or not word.isascii()
        or not word.replace("_", "").isalpha()
    ):
        raise RemoteProtocolError(BAD_COMMAND, "a command starts with a word of letters")
    return word.upper(), rest


def parse_chat_command(line: str) -> ChatCommand:
    """Parse one whole line from a chat client; raise only ``RemoteProtocolError``."""
    word, rest = split_word(line)
    if word == "MSG":
        return Msg(validate_content(rest))
    args = rest.split()
    match word:
        case "HELLO" if 2 <= len(args) <= 3:
            user, room = validate_user(args[0]), validate_room_code(args[1])
            return Hello(user, room, validate_token(args[2]) if len(args) == 3 else None)
        case "GET_IMG" if len(args) == 1:
            return _parse_get_image(args[0])
        case "HISTORY":
            return _parse_history(args)
        case "WHO" if not args:
            return Who()
        case "TYPING" if not args:
            return Typing()
        case "PING" if not args:
            return Ping()
        case "BYE" if not args:
            return Bye()
    if word in _USAGE:
        raise RemoteProtocolError(BAD_ARGUMENT, f"usage: {_USAGE[word]}")
    raise RemoteProtocolError(BAD_COMMAND, f"unknown command {word}; try {', '.join(_USAGE)}")


def validate_content(content: str) -> str:
    """Message text: non-blank, no control characters except tab. Never altered."""
    if not content.strip():
        raise RemoteProtocolError(BAD_ARGUMENT, "empty message")
    for char in content:
        if (char < " " and char != "\t") or "\x7f" <= char <= "\x9f":
            raise RemoteProtocolError(
                BAD_ARGUMENT, f"message may not contain control character {char!r}"
            )
    return content


def validate_chat_filename(name: str) -> str:
    """A file name in a chat line: the shared rules, and no blanks (it is one word here)."""
    validate_filename(name)
    if any(char.isspace() for char in name):
        raise RemoteProtocolError("BAD_NAME", "a chat file name may not contain spaces")
    return name


def parse_count(text: str, what: str) -> int:
    """A non-negative decimal number of at most ``ID_MAX_DIGITS`` ASCII digits."""
    if not text.isascii() or not text.isdigit() or len(text) > ID_MAX_DIGITS:
        raise RemoteProtocolError(BAD_ARGUMENT, f"{what} must be a decimal number")
    return int(text)


def _parse_get_image(arg: str) -> GetImage:
    if arg.isascii() and arg.isdigit():
        return GetImage(image_id=parse_count(arg, "image id"))
    return GetImage(name=validate_chat_filename(arg))


def _parse_history(args: list[str]) -> History:
    if len(args) % 2 or len(args) > 4:
        raise RemoteProtocolError(BAD_ARGUMENT, f"usage: {_USAGE['HISTORY']}")
    options: dict[str, int] = {}
    for word, value in zip(args[::2], args[1::2], strict=True):
        key = word.lower()
        if key not in ("since", "limit") or key in options:
            raise RemoteProtocolError(BAD_ARGUMENT, f"usage: {_USAGE['HISTORY']}")
        options[key] = parse_count(value, key)
    limit = options.get("limit", HISTORY_DEFAULT_LIMIT)
    if limit < 1:
        raise RemoteProtocolError(BAD_ARGUMENT, "limit must be at least 1")
    return History(options.get("since"), limit)


def parse_image_header(fields: tuple[str, ...]) -> str:
    """The fields before the base64 of an ``IMG`` request: just the file name."""
    if len(fields) != 1:
        raise RemoteProtocolError(BAD_ARGUMENT, f"usage: {_USAGE['IMG']}")
    return validate_chat_filename(fields[0])


def sniff_image_type(head: bytes) -> str | None:
    """The MIME type of an image from its first bytes (``SNIFF_BYTES`` suffice), if known."""
    for magic, mime in IMAGE_MAGIC:
        if head.startswith(magic):
            return mime
    if len(head) >= SNIFF_BYTES and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


# ---------------------------------------------------------------------------------------
# Server lines: records, formatting (server) and parsing (client)


@dataclass(frozen=True)
class ImageMeta:
    size: int
    mime: str
    sha256: str
    name: str


@dataclass(frozen=True)
class ChatMessage:
    id: int
    ts_ms: int
    user: str
    content: str


@dataclass(frozen=True)
class ImageMessage:
    id: int
    ts_ms: int
    user: str
    image: ImageMeta


@dataclass(frozen=True)
class Joined:
    user: str


@dataclass(frozen=True)
class Left:
    user: str


@dataclass(frozen=True)
class TypingNotice:
    user: str


@dataclass(frozen=True)
class Welcome:
    room: str
    user: str
    last_id: int


@dataclass(frozen=True)
class Ok:
    """``OK <what> [<id>]`` — ``id`` is the new message's id for ``MSG`` and ``IMG``."""

    what: str
    id: int | None = None


@dataclass(frozen=True)
class Users:
    users: tuple[str, ...]


@dataclass(frozen=True)
class Hist:
    """One history record, sent between a ``HISTORY`` request and its ``HISTORY_END``."""

    event: ChatMessage | ImageMessage


@dataclass(frozen=True)
class HistoryEnd:
    count: int
    more: bool


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class ErrorReply:
    code: str
    text: str


RoomEvent = ChatMessage | ImageMessage
ServerLine = (
    ChatMessage
    | ImageMessage
    | Joined
    | Left
    | TypingNotice
    | Welcome
    | Ok
    | Users
    | Hist
    | HistoryEnd
    | Pong
    | ErrorReply
)


def format_timestamp(ts_ms: int) -> str:
    """UTC, millisecond precision, ISO 8601: ``2026-01-05T10:00:00.123Z``."""
    seconds, millis = divmod(ts_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def parse_timestamp(text: str) -> int:
    if len(text) != 24 or text[10] != "T" or text[19] != "." or not text.endswith("Z"):
        raise RemoteProtocolError(BAD_ARGUMENT, "timestamp must look like 2026-01-05T10:00:00.123Z")
    try:
        parsed = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise RemoteProtocolError(BAD_ARGUMENT, "timestamp is not a valid date") from None
    return calendar.timegm(parsed) * 1000 + parse_count(text[20:23], "milliseconds")


def format_event(event: RoomEvent) -> str:
    stamp = format_timestamp(event.ts_ms)
    if isinstance(event, ChatMessage):
        return f"MSG {event.id} {stamp} {event.user} {event.content}"
    meta = event.image
    return f"IMG {event.id} {stamp} {event.user} {meta.size} {meta.mime} {meta.sha256} {meta.name}"


def format_welcome(room: str, user: str, last_id: int) -> str:
    return f"OK HELLO {room} {user} {last_id}"


def format_users(users: list[str]) -> str:
    return " ".join(["USERS", *users])


def format_history_end(count: int, more: bool) -> str:
    return f"HISTORY_END {count} {int(more)}"


def format_image_data_header(image_id: int, meta: ImageMeta) -> str:
    """``IMG_DATA <id> <size> <type> <file> `` — the base64 and ``LF`` follow, streamed."""
    return f"IMG_DATA {image_id} {meta.size} {meta.mime} {meta.name} "


def parse_server_line(line: str) -> ServerLine:
    """Parse one whole line from the chat server (``IMG_DATA`` is streamed separately)."""
    word, _, rest = line.partition(" ")
    match word:
        case "MSG" | "IMG":
            return _parse_event(word, rest)
        case "HIST":
            kind, _, event = rest.partition(" ")
            return Hist(_parse_event(kind, event))
        case "JOINED":
            return Joined(validate_user(rest))
        case "LEFT":
            return Left(validate_user(rest))
        case "TYPING":
            return TypingNotice(validate_user(rest))
        case "OK":
            return _parse_ok(rest)
        case "USERS":
            return Users(tuple(validate_user(user) for user in rest.split(" ") if user))
        case "HISTORY_END":
            count, more = _fields(rest, 2, "HISTORY_END")
            if more not in ("0", "1"):
                raise RemoteProtocolError(BAD_ARGUMENT, "HISTORY_END <more> must be 0 or 1")
            return HistoryEnd(parse_count(count, "count"), more == "1")
        case "PONG" if not rest:
            return Pong()
        case "ERR":
            code, _, text = rest.partition(" ")
            return ErrorReply(code or "UNKNOWN", text)
    raise RemoteProtocolError(BAD_COMMAND, f"unexpected line from the server: {line[:60]!r}")


def _fields(rest: str, count: int, what: str) -> list[str]:
    parts = rest.split(" ", count - 1)
    if len(parts) != count or not all(parts):
        raise RemoteProtocolError(BAD_ARGUMENT, f"malformed {what} line")
    return parts


def _parse_event(word: str, rest: str) -> RoomEvent:
    if word == "MSG":
        id_, stamp, user, content = _fields(rest, 4, "MSG")
        return ChatMessage(
            parse_count(id_, "id"), parse_timestamp(stamp), validate_user(user), content
        )
    if word != "IMG":
        raise RemoteProtocolError(BAD_COMMAND, f"unknown history record {word[:16]!r}")
    id_, stamp, user, size, mime, digest, name = _fields(rest, 7, "IMG")
    meta = ImageMeta(parse_count(size, "size"), _mime(mime), _digest(digest), name)
    validate_chat_filename(name)
    return ImageMessage(parse_count(id_, "id"), parse_timestamp(stamp), validate_user(user), meta)


def parse_image_data_header(fields: tuple[str, ...]) -> tuple[int, ImageMeta]:
    """The fields before the base64 of an ``IMG_DATA`` reply: id, size, type, file."""
    if len(fields) != 4:
        raise RemoteProtocolError(BAD_ARGUMENT, "malformed IMG_DATA line")
    id_, size, mime, name = fields
    meta = ImageMeta(parse_count(size, "size"), _mime(mime), "", validate_chat_filename(name))
    return parse_count(id_, "id"), meta


def _parse_ok(rest: str) -> Ok | Welcome:
    parts = rest.split(" ")
    match parts:
        case ["HELLO", room, user, last_id]:
            return Welcome(
                validate_room_code(room), validate_user(user), parse_count(last_id, "id")
            )
        case ["MSG" | "IMG" as what, id_]:
            return Ok(what, parse_count(id_, "id"))
        case ["TYPING" | "BYE" as what]:
            return Ok(what)
    raise RemoteProtocolError(BAD_ARGUMENT, f"malformed OK line: {rest[:60]!r}")


def _mime(text: str) -> str:
    if text not in IMAGE_TYPES:
        raise RemoteProtocolError(BAD_ARGUMENT, f"unknown image type {text[:40]!r}")
    return text


def _digest(text: str) -> str:
    if len(text) != SHA256_HEX_CHARS or not set(text) <= set("0123456789abcdef"):
        raise RemoteProtocolError(BAD_ARGUMENT, "malformed sha256")
    return text
