"""Framing shared by the TCP services, sans-IO.

Theory of operation
-------------------
A TCP service speaks UTF-8 text lines ending in ``\\n`` (a ``\\r`` before it is dropped).
Where binary data must follow a line, the line announces its size and exactly that many
raw bytes follow (a *body*). ``FrameBuffer`` is fed whatever the socket produced and hands
back whole lines or bodies; it never holds more than ``max_line_bytes`` of an unfinished
line, or the body it was asked for.

Decisions (documented in docs/PROTOCOL.md):

* A line longer than ``max_line_bytes`` raises ``LINE_TOO_LONG`` as soon as the limit is
  crossed; the rest of that line is discarded up to its ``\\n`` and the connection stays
  usable. The server answers ``ERR LINE_TOO_LONG ...``.
* A line that is not valid UTF-8 is consumed whole and raises ``BAD_UTF8``; the connection
  stays usable.
* A body is always read completely once its header was accepted, so bytes of a body can
  never be mistaken for commands (the original's "protocol smuggling"). A header whose size
  is unparseable or above the service limit is answered with an error and the connection is
  closed, because the body's end can no longer be found safely.
"""

from __future__ import annotations

from syncrox.errors import BAD_UTF8, LINE_TOO_LONG, LocalProtocolError, RemoteProtocolError

ERROR_TEXT_MAX_CHARS = 200


class FrameBuffer:
    """Accumulates received bytes and splits them into lines and bodies."""

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._discarding = False  # inside an over-long line, dropping bytes up to its newline

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data

    def next_line(self) -> str | None:
        """Return the next complete line, or ``None`` if more bytes are needed.

        Raises ``RemoteProtocolError`` for an over-long or non-UTF-8 line, after dropping it.
        """
        if self._discarding and not self._skip_to_newline():
            return None
        newline = self._buffer.find(b"\n", self._scanned, self.max_line_bytes + 2)
        if newline < 0:
            self._scanned = min(len(self._buffer), self.max_line_bytes + 2)
            if self._line_length(self._scanned) > self.max_line_bytes:
                self._start_discarding()
                raise RemoteProtocolError(
                    LINE_TOO_LONG, f"line longer than {self.max_line_bytes} bytes"
                )
            return None
        raw = bytes(self._buffer[:newline])
        del self._buffer[: newline + 1]
        self._scanned = 0
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > self.max_line_bytes:
            raise RemoteProtocolError(
                LINE_TOO_LONG, f"line longer than {self.max_line_bytes} bytes"
            )
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(
                BAD_UTF8, f"line is not valid UTF-8 at byte {exc.start}"
            ) from None

    def next_body(self, size: int) -> bytes | None:
        """Return exactly ``size`` bytes once they have all arrived, else ``None``."""
        if len(self._buffer) < size:
            return None
        body = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._scanned = 0
        return body

    def drop_body(self, size: int) -> int:
        """Drop up to ``size`` bytes of a body nobody will read; how many were dropped."""
        dropped = min(size, len(self._buffer))
        del self._buffer[:dropped]
        self._scanned = 0
        return dropped

    def _line_length(self, end: int) -> int:
        """Length of the pending line, not counting a final ``\\r`` that may precede ``\\n``."""
        return end - 1 if end and self._buffer[end - 1 : end] == b"\r" else end

    def _start_discarding(self) -> None:
        # Only the bytes already scanned are known to hold no newline: drop those, and let
        # _skip_to_newline find the end of the line in what follows (later lines survive).
        del self._buffer[: self._scanned]
        self._scanned = 0
        self._discarding = True

    def _skip_to_newline(self) -> bool:
        """Drop bytes of an over-long line; ``True`` once its newline has gone too."""
        newline = self._buffer.find(b"\n")
        if newline < 0:
            self._buffer.clear()
            return False
        del self._buffer[: newline + 1]
        self._discarding = False
        self._scanned = 0
        return True


def encode_line(text: str) -> bytes:
    """Encode one outgoing line. A line we send may never contain a line break."""
    if "\n" in text or "\r" in text:
        raise LocalProtocolError("BAD_ARGUMENT", "an outgoing line may not contain a line break")
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        raise LocalProtocolError("BAD_ARGUMENT", "an outgoing line must be valid Unicode") from None


def format_error(code: str, text: str) -> str:
    """``ERR <code> <text>``, with the text made single-line and bounded."""
    clean = " ".join(text.split())
    if len(clean) > ERROR_TEXT_MAX_CHARS:
        clean = clean[: ERROR_TEXT_MAX_CHARS - 3] + "..."
    return f"ERR {code} {clean}" if clean else f"ERR {code}"


def parse_error(line: str) -> tuple[str, str] | None:
    """If ``line`` is an ``ERR`` reply, return ``(code, text)``."""
    if line != "ERR" and not line.startswith("ERR "):
        return None
    _, _, rest = line.partition(" ")
    code, _, text = rest.partition(" ")
    return (code or "UNKNOWN"), text


def parse_size(text: str, *, limit: int, what: str = "size") -> int:
    """Parse a decimal byte count from a header; bounded by ``limit``."""
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise RemoteProtocolError("BAD_ARGUMENT", f"{what} must be a decimal byte count")
    value = int(text)
    if value > limit:
        raise RemoteProtocolError("TOO_LARGE", f"{what} {value} exceeds the limit of {limit}")
    return value
