"""The room manager's line protocol (TCP 9013): commands, replies, parsers. Sans-IO.

    CREATE <user>                  -> ROOM <code> <token>
    JOIN <code> <user> [<token>]   -> JOINED <code> <user> <token>
    EXISTS <code>                  -> OK
    LIST                           -> ROOMS [<code> ...]
    WHOAMI <token>                 -> MEMBER <code> <user>
    LEAVE <token>                  -> OK LEFT <code>
    PING                           -> PONG
    BYE                            -> OK BYE            (then the server closes)
    anything wrong                 -> ERR <code> <text>

Command words are case-insensitive; words are separated by runs of whitespace, so no
argument can contain any (user names never do). The byte-level description is in docs/PROTOCOL.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncrox.errors import BAD_COMMAND, RemoteProtocolError

# Re-exported: these commands are part of this protocol too.
from syncrox.protocol.commands import Bye as Bye
from syncrox.protocol.commands import Ping as Ping
from syncrox.protocol.commands import checked_command
from syncrox.protocol.names import validate_room_code, validate_token, validate_user


@dataclass(frozen=True)
class Create:
    user: str


@dataclass(frozen=True)
class Join:
    code: str
    user: str
    token: str | None = None


@dataclass(frozen=True)
class Exists:
    code: str


@dataclass(frozen=True)
class ListRooms:
    pass


@dataclass(frozen=True)
class WhoAmI:
    token: str


@dataclass(frozen=True)
class Leave:
    token: str


RoomsCommand = Create | Join | Exists | ListRooms | WhoAmI | Leave | Ping | Bye

# command word -> (minimum args, maximum args)
_ARITY: dict[str, tuple[int, int]] = {
    "CREATE": (1, 1),
    "JOIN": (2, 3),
    "EXISTS": (1, 1),
    "LIST": (0, 0),
    "WHOAMI": (1, 1),
    "LEAVE": (1, 1),
    "PING": (0, 0),
    "BYE": (0, 0),
}

_USAGE = {
    "CREATE": "CREATE <user>",
    "JOIN": "JOIN <code> <user> [<token>]",
    "EXISTS": "EXISTS <code>",
    "LIST": "LIST",
    "WHOAMI": "WHOAMI <token>",
    "LEAVE": "LEAVE <token>",
    "PING": "PING",
    "BYE": "BYE",
}


def parse_rooms_command(line: str) -> RoomsCommand:
    """Parse one line from a room-manager client; raise only ``RemoteProtocolError``."""
    word, args = checked_command(line, _ARITY, _USAGE)
    return _build(word, args)


def _build(word: str, args: list[str]) -> RoomsCommand:
    match word:
        case "CREATE":
            return Create(validate_user(args[0]))
        case "JOIN":
            token = validate_token(args[2]) if len(args) == 3 else None
            return Join(validate_room_code(args[0]), validate_user(args[1]), token)
        case "EXISTS":
            return Exists(validate_room_code(args[0]))
        case "LIST":
            return ListRooms()
        case "WHOAMI":
            return WhoAmI(validate_token(args[0]))
        case "LEAVE":
            return Leave(validate_token(args[0]))
        case "PING":
            return Ping()
        case _:
            return Bye()


def _known() -> str:
    return ", ".join(_ARITY)


# ---------------------------------------------------------------------------------------
# Replies (formatted by the server, parsed by the client)


def format_room(code: str, token: str) -> str:
    return f"ROOM {code} {token}"


def format_joined(code: str, user: str, token: str) -> str:
    return f"JOINED {code} {user} {token}"


def format_rooms(codes: list[str]) -> str:
    return " ".join(["ROOMS", *codes])


def format_member(code: str, user: str) -> str:
    return f"MEMBER {code} {user}"


def expect_reply(line: str, word: str, count: int) -> list[str]:
    """Check a reply starts with ``word`` and has ``count`` arguments; return them."""
    parts = line.split(" ")
    if parts[0] != word or len(parts) - 1 != count:
        raise RemoteProtocolError(BAD_COMMAND, f"expected a {word} reply, got {line[:60]!r}")
    return parts[1:]


def parse_rooms_reply(line: str) -> list[str]:
    parts = line.split(" ")
    if parts[0] != "ROOMS":
        raise RemoteProtocolError(BAD_COMMAND, f"expected a ROOMS reply, got {line[:60]!r}")
    return [validate_room_code(code) for code in parts[1:] if code]
