"""Validation of every name a peer can send: user names, room codes, tokens, file names.

The rules are shared by every service so that a name accepted by one is accepted by all,
and none of them can ever contain a space (the original split user names at spaces and
broke its own line formats), a path separator or a control character.
"""

from __future__ import annotations

import unicodedata

from syncrox.errors import BAD_NAME, BAD_ROOM, BAD_TOKEN, BAD_USER, RemoteProtocolError

USER_MAX_CHARS = 32
USER_EXTRA_CHARS = frozenset("_-.")
ROOM_CODE_DIGITS = 4
TOKEN_MIN_CHARS = 16
TOKEN_MAX_CHARS = 64
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
FILENAME_MAX_BYTES = 200
# Characters that mean something to a shell, a path or a Windows file system.
FILENAME_FORBIDDEN = frozenset('/\\:*?"<>|')
_ASCII_DIGITS = frozenset("0123456789")


def validate_user(name: str) -> str:
    """Return ``name`` if it is a valid user name, else raise ``RemoteProtocolError``.

    1-32 characters, letters and digits of any script plus ``_ - .``, in Unicode NFC form
    (so two spellings of the same visible name cannot coexist).
    """
    if not 1 <= len(name) <= USER_MAX_CHARS:
        raise RemoteProtocolError(BAD_USER, f"user name must be 1-{USER_MAX_CHARS} characters")
    if unicodedata.normalize("NFC", name) != name:
        raise RemoteProtocolError(BAD_USER, "user name must be in Unicode NFC form")
    if not all(ch.isalnum() or ch in USER_EXTRA_CHARS for ch in name):
        raise RemoteProtocolError(BAD_USER, "user name may contain only letters, digits, _ - .")
    return name


def user_key(name: str) -> str:
    """The key under which a user name is reserved: ``Alice`` and ``alice`` are one name."""
    return name.casefold()


def validate_room_code(code: str) -> str:
    """A room code is exactly four ASCII digits, 1000-9999."""
    if len(code) != ROOM_CODE_DIGITS or not set(code) <= _ASCII_DIGITS or code[0] == "0":
        raise RemoteProtocolError(BAD_ROOM, "room code must be 4 digits, 1000-9999")
    return code


def validate_token(token: str) -> str:
    if not TOKEN_MIN_CHARS <= len(token) <= TOKEN_MAX_CHARS or not set(token) <= TOKEN_CHARS:
        raise RemoteProtocolError(BAD_TOKEN, "malformed membership token")
    return token


def validate_filename(name: str) -> str:
    """A file name a peer may store or fetch: one path component, printable, bounded.

    Refused: empty, over 200 UTF-8 bytes, leading dot (``.``, ``..``, hidden files),
    trailing dot or space, path separators and shell/Windows specials, control and
    non-printing characters, and names not in NFC form.
    """
    if not name or len(name.encode("utf-8", "surrogatepass")) > FILENAME_MAX_BYTES:
        raise RemoteProtocolError(BAD_NAME, f"file name must be 1-{FILENAME_MAX_BYTES} bytes")
    if name.startswith(".") or name.endswith((".", " ")):
        raise RemoteProtocolError(BAD_NAME, "file name may not start with '.' or end in '.'/' '")
    if unicodedata.normalize("NFC", name) != name:
        raise RemoteProtocolError(BAD_NAME, "file name must be in Unicode NFC form")
    for ch in name:
        if ch in FILENAME_FORBIDDEN or not ch.isprintable():
            raise RemoteProtocolError(BAD_NAME, f"file name may not contain {ch!r}")
        if unicodedata.category(ch) in ("Cs", "Co", "Cn"):
            raise RemoteProtocolError(BAD_NAME, "file name contains an invalid code point")
    return name
