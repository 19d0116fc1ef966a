"""What the line protocols of the TCP services share: splitting a command line, checking a
command word and its number of arguments, and the commands several services take alike.
Sans-IO.

Every service's command word is case-insensitive letters (at most 16); arguments are
separated by runs of whitespace. An unknown word gets ``BAD_COMMAND`` listing the known
ones; a known word with the wrong number of arguments gets ``BAD_ARGUMENT`` with its usage.

The code execution and collaborative editor services admit a client alike (``HELLO <user>
<room> [<token>]`` or ``AUTH <token>``, as the chat's ``HELLO``) and list their languages
with ``LANGS``; every service answers ``PING`` and ``BYE``.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from syncrox.errors import BAD_ARGUMENT, BAD_COMMAND, RemoteProtocolError
from syncrox.protocol.names import validate_room_code, validate_token, validate_user

COMMAND_WORD_MAX_CHARS = 16


@dataclass(frozen=True)
class Hello:
    user: str
    room: str
    token: str | None = None


@dataclass(frozen=True)
class Auth:
    token: str


@dataclass(frozen=True)
class Langs:
    pass


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Bye:
    pass


# Admission and the language list, for services that run code or edit it by language.
ADMISSION_ARITY: dict[str, tuple[int, int]] = {"HELLO": (2, 3), "AUTH": (1, 1), "LANGS": (0, 0)}
ADMISSION_USAGE = {
    "HELLO": "HELLO <user> <room> [<token>]",
    "AUTH": "AUTH <token>",
    "LANGS": "LANGS",
}


def split_command(line: str) -> tuple[str, list[str]]:
    """Split a command line into an upper-case word and its arguments."""
    parts = line.split()
    if not parts:
        raise RemoteProtocolError(BAD_COMMAND, "empty line")
    word = parts[0]
    if len(word) > COMMAND_WORD_MAX_CHARS or not word.isascii() or not word.isalpha():
        raise RemoteProtocolError(BAD_COMMAND, "a command starts with a word of letters")
    return word.upper(), parts[1:]


def checked_command(
    line: str,
    arity: Mapping[str, tuple[int, int]],
    usage: Mapping[str, str],
    *,
    fatal: Container[str] = (),
) -> tuple[str, list[str]]:
    """The word and arguments of ``line``, known to ``arity`` and with as many arguments as
    it allows. A wrong count for a word in ``fatal`` (one that announces a body whose end
    is then unknown) is a fatal refusal: the connection must close after the ``ERR``."""
    word, args = split_command(line)
    bounds = arity.get(word)
    if bounds is None:
        known = ", ".join(arity)
        raise RemoteProtocolError(BAD_COMMAND, f"unknown command {word[:16]}; try {known}")
    low, high = bounds
    if not low <= len(args) <= high:
        raise RemoteProtocolError(BAD_ARGUMENT, f"usage: {usage[word]}", fatal=word in fatal)
    return word, args


def parse_admission(word: str, args: list[str]) -> Hello | Auth | Langs | None:
    """``HELLO``, ``AUTH`` or ``LANGS`` (arguments already counted), else ``None``."""
    match word:
        case "HELLO":
            token = validate_token(args[2]) if len(args) == 3 else None
            return Hello(validate_user(args[0]), validate_room_code(args[1]), token)
        case "AUTH":
            return Auth(validate_token(args[0]))
        case "LANGS":
            return Langs()
    return None
