"""Splitting a chat byte stream into bounded lines and streamed images. Sans-IO.

Theory of operation
-------------------
The seed carries an image as one line, ``IMG <file> <base64>``, which can be megabytes
long. Buffering such a line whole would let a thousand connections hold gigabytes, so
``ChatFrames`` never does: it looks at the first word of every line, and

* for an ordinary line, behaves like ``framing.FrameBuffer``: at most ``max_line_bytes``
  (CR before LF dropped), UTF-8 checked, an over-long line refused as soon as the limit is
  crossed and the rest of it discarded unread;
* for a line whose first word is the *image word* (``IMG`` on the server, ``IMG_DATA`` on
  the client) followed by a blank, reads the header fields (at most ``max_header_bytes``),
  emits ``ImageStart(fields)``, then decodes the base64 as it arrives and emits the bytes as
  ``ImageChunk``s, and ``ImageEnd`` at the line's LF. Decoded bytes beyond
  ``max_image_bytes`` are refused (``TOO_LARGE``) the moment they arrive.

So the reader holds at most one received chunk plus three base64 characters, whatever the
size of the image. Any error is raised as ``RemoteProtocolError``; the reader then drops
the rest of that line up to its LF and the connection stays usable. A consumer that
refuses an image itself (not a member, rate limited, not an image) calls ``skip_line()``.

The base64 is the standard alphabet with padding (RFC 4648 section 4), without line breaks
or blanks: what ``base64 -w0`` prints.
"""

from __future__ import annotations

import binascii
import enum
import re
from dataclasses import dataclass

from syncrox.errors import BAD_ARGUMENT, BAD_UTF8, LINE_TOO_LONG, TOO_LARGE, RemoteProtocolError

BLANKS = b" \t"
WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
DEFAULT_MAX_HEADER_BYTES = 512
_TOKEN = re.compile(rb"[^ \t]+")


@dataclass(frozen=True)
class Line:
    text: str


@dataclass(frozen=True)
class ImageStart:
    """The header of an image line: the fields between the image word and the base64."""

    fields: tuple[str, ...]


@dataclass(frozen=True)
class ImageChunk:
    data: bytes


@dataclass(frozen=True)
class ImageEnd:
    size: int


FrameEvent = Line | ImageStart | ImageChunk | ImageEnd


class _State(enum.Enum):
    LINE_START = "line_start"  # nothing of the current line classified yet
    TEXT = "text"  # an ordinary line
    HEADER = "header"  # an image line, before its base64
    DATA = "data"  # inside an image line's base64
    DISCARD = "discard"  # dropping the rest of a refused line


class ChatFrames:
    def __init__(
        self,
        *,
        max_line_bytes: int,
        max_image_bytes: int,
        image_word: str = "IMG",
        header_fields: int = 1,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        usage: str = "IMG <file> <base64>",
    ) -> None:
        if max_line_bytes < 1 or max_image_bytes < 0 or header_fields < 1:
            raise ValueError("limits must be positive")
        self.max_line_bytes = max_line_bytes
        self.max_image_bytes = max_image_bytes
        self.max_header_bytes = max_header_bytes
        self._image_word = image_word.upper().encode("ascii")
        self._header_fields = header_fields
        self._usage = usage
        self._buffer = bytearray()
        self._state = _State.LINE_START
        self._tail = b""  # base64 characters not yet forming a whole quantum
        self._padded = False  # a quantum with "=" was seen: the base64 must end here
        self._image_size = 0
        self._end_pending = False

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) + len(self._tail)

    @property
    def in_image(self) -> bool:
        """True between an ``ImageStart`` and its ``ImageEnd`` (or the error ending it)."""
        return self._state is _State.DATA or self._end_pending

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data

    def skip_line(self) -> None:
        """Drop the rest of the current line (a refused image) up to and including its LF."""
        self._end_pending = False
        if self._state is not _State.LINE_START:
            self._state = _State.DISCARD

    def next_event(self) -> FrameEvent | None:
        """The next event, or ``None`` if more bytes are needed. Raises only
        ``RemoteProtocolError``, after which the rest of the offending line is dropped."""
        while True:
            if self._end_pending:
                self._end_pending = False
                return ImageEnd(self._image_size)
            state = self._state
            if state is _State.DISCARD:
                if not self._skip_to_newline():
                    return None
                continue
            if state is _State.LINE_START and not self._classify():
                return None
            if self._state is _State.TEXT:
                return self._text_line()
            if self._state is _State.HEADER:
                event: FrameEvent | None = self._header()
            else:
                event = self._data()
            if event is not None or self._state is not _State.LINE_START:
                return event

    # ------------------------------------------------------------------ ordinary lines

    def _classify(self) -> bool:
        """Decide whether the pending line is an image line; ``False`` if more is needed.

        Decided on the line's first ``max_line_bytes + 1`` bytes only, so the answer never
        depends on how the bytes were split into chunks."""
        window = self._buffer[: self.max_line_bytes + 1]
        start = 0
        while start < len(window) and window[start] in BLANKS:
            start += 1
        end = start
        while end < len(window) and window[end] in WORD_BYTES:
            end += 1
        complete = len(window) > self.max_line_bytes
        if end == len(window) and not complete and end - start <= len(self._image_word):
            return False
        is_image = (
            bytes(window[start:end]).upper() == self._image_word
            and end < len(window)
            and window[end] in BLANKS
        )
        self._state = _State.HEADER if is_image else _State.TEXT
        return True

    def _text_line(self) -> Line | None:
        limit = self.max_line_bytes
        newline = self._buffer.find(b"\n", 0, limit + 2)
        if newline < 0:
            pending = len(self._buffer)
            if pending > limit + 1 or (pending == limit + 1 and self._buffer[-1:] != b"\r"):
                self._state = _State.DISCARD
                raise RemoteProtocolError(LINE_TOO_LONG, f"line longer than {limit} bytes")
            return None
        raw = bytes(self._buffer[:newline])
        del self._buffer[: newline + 1]
        self._state = _State.LINE_START
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > limit:
            raise RemoteProtocolError(LINE_TOO_LONG, f"line longer than {limit} bytes")
        return Line(_decode(raw))

    def _skip_to_newline(self) -> bool:
        newline = self._buffer.find(b"\n")
        if newline < 0:
            self._buffer.clear()
            return False
        del self._buffer[: newline + 1]
        self._state = _State.LINE_START
        return True

    # ------------------------------------------------------------------ image lines

    def _header(self) -> ImageStart | None:
        window = bytes(self._buffer[: self.max_header_bytes + 1])
        newline = window.find(b"\n")
        scope = window if newline < 0 else window[:newline]
        wanted = self._header_fields + 2  # the word, the fields, then the base64
        for index, match in enumerate(_TOKEN.finditer(scope), start=1):
            if index == wanted and match.start() <= self.max_header_bytes:
                return self._start_image(match.start())
        if newline >= 0 or len(window) > self.max_header_bytes:
            self._state = _State.DISCARD
            raise RemoteProtocolError(BAD_ARGUMENT, f"usage: {self._usage}")
        return None

    def _start_image(self, data_start: int) -> ImageStart:
        header = bytes(self._buffer[:data_start])
        del self._buffer[:data_start]
        self._state = _State.DATA
        self._tail, self._padded, self._image_size = b"", False, 0
        try:
            fields = _decode(header).split()[1:]
        except RemoteProtocolError:
            self._state = _State.DISCARD
            raise
        return ImageStart(tuple(fields))

    def _data(self) -> ImageChunk | None:
        newline = self._buffer.find(b"\n")
        if newline >= 0:
            segment = bytes(self._buffer[:newline])
            segment = segment[:-1] if segment.endswith(b"\r") else segment
            consumed = newline + 1
        else:
            # A CR at the very end may be the line's own CR before its LF: keep it for later.
            consumed = len(self._buffer) - (1 if self._buffer.endswith(b"\r") else 0)
            segment = bytes(self._buffer[:consumed])
        try:
            decoded = self._decode_base64(segment, final=newline >= 0)
        except RemoteProtocolError:
            self._state = _State.DISCARD
            raise
        del self._buffer[:consumed]
        if newline >= 0:
            self._state = _State.LINE_START
            self._end_pending = True
        return ImageChunk(decoded) if decoded else None

    def _decode_base64(self, segment: bytes, *, final: bool) -> bytes:
        text = self._tail + segment
        usable = len(text) if final else len(text) - len(text) % 4
        self._tail = text[usable:]
        whole = usable - usable % 4
        decoded = self._decode_quanta(text[:whole])
        if whole < usable:
            raise RemoteProtocolError(BAD_ARGUMENT, "image data is not whole base64 quanta")
        return decoded

    def _decode_quanta(self, text: bytes) -> bytes:
        """Decode whole quanta, refusing what a quantum-by-quantum decoder would refuse
        first: an invalid quantum before the one that crosses the size limit, or after it."""
        if not text:
            return b""
        if self._padded:
            raise RemoteProtocolError(BAD_ARGUMENT, "image data continues after base64 padding")
        budget = 4 * ((self.max_image_bytes - self._image_size) // 3 + 1)
        head, rest = text[:budget], text[budget:]
        try:
            decoded = binascii.a2b_base64(head, strict_mode=True)
        except binascii.Error:
            raise RemoteProtocolError(BAD_ARGUMENT, "image data is not valid base64") from None
        self._image_size += len(decoded)
        if self._image_size > self.max_image_bytes:
            raise RemoteProtocolError(
                TOO_LARGE, f"image larger than the limit of {self.max_image_bytes} bytes"
            )
        self._padded = head.endswith(b"=")
        if rest:
            # Within the budget only if ``head`` was padded, i.e. the base64 had ended.
            raise RemoteProtocolError(BAD_ARGUMENT, "image data continues after base64 padding")
        return decoded


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(
            BAD_UTF8, f"line is not valid UTF-8 at byte {exc.start}"
        ) from None
