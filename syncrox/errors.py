"""The one error tree of SyncroX.

    SyncroxError
    ├── ConfigError            a setting is missing, malformed or out of range
    ├── StoreError             persistence failed (disk, SQLite, blob store)
    └── ProtocolError          something on the wire was wrong
        ├── LocalProtocolError     we refuse to send or do this (our side's rules)
        ├── RemoteProtocolError    the peer sent bytes we cannot accept
        └── RequestRefused         (clients) the server answered ERR to our request

Every ``ProtocolError`` carries a short symbolic ``code`` (``BAD_COMMAND``, ``LINE_TOO_LONG``,
...) so that a server can answer ``ERR <code> <text>`` without guessing, and so tests can
assert on the code rather than on wording. Parsers of peer bytes raise only
``RemoteProtocolError``.
"""

from __future__ import annotations

# Error codes used on the wire. Services may add their own; these are shared by all of them.
BAD_COMMAND = "BAD_COMMAND"
BAD_ARGUMENT = "BAD_ARGUMENT"
BAD_UTF8 = "BAD_UTF8"
LINE_TOO_LONG = "LINE_TOO_LONG"
TOO_LARGE = "TOO_LARGE"
BAD_ROOM = "BAD_ROOM"
BAD_USER = "BAD_USER"
BAD_NAME = "BAD_NAME"
NOT_FOUND = "NOT_FOUND"
NOT_MEMBER = "NOT_MEMBER"
BAD_TOKEN = "BAD_TOKEN"  # noqa: S105 (an error code, not a secret)
NAME_TAKEN = "NAME_TAKEN"
DISPLACED = "DISPLACED"  # the name's token holder joined; this connection is closed
RATE_LIMITED = "RATE_LIMITED"
ROOMS_FULL = "ROOMS_FULL"
ROOM_FULL = "ROOM_FULL"
BUSY = "BUSY"
TIMEOUT = "TIMEOUT"
TOO_MANY_ERRORS = "TOO_MANY_ERRORS"
INTERNAL = "INTERNAL"


class SyncroxError(Exception):
    """Root of every error SyncroX raises on purpose."""


class ConfigError(SyncroxError):
    """A configuration value is missing, malformed or out of range."""


class StoreError(SyncroxError):
    """Persistence failed."""


class ProtocolError(SyncroxError):
    """Something on the wire was wrong. ``code`` is the symbolic wire error code."""

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        # ``fatal``: after answering, the connection must close (e.g. a body of unknown
        # length follows, so the next command boundary can no longer be found).
        self.fatal = fatal


class LocalProtocolError(ProtocolError):
    """We refuse to do or send this: the request is well-formed but not allowed."""


class RequestRefused(ProtocolError):
    """A server answered ``ERR <code> <text>`` to our request (raised by clients)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes we cannot accept."""


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The exceptions behind ``exc``, in order: itself, or every exception its (nested)
    exception groups hold. Trio's nurseries wrap what their tasks raise in groups."""
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    return [leaf for inner in exc.exceptions for leaf in leaf_exceptions(inner)]
