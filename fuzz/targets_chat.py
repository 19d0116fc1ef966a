"""Fuzz targets of the chat service: its stream reader and both directions' line parsers.

``chat_line`` is what the server does with a client's bytes; ``chat_server_line`` is what
the client library does with the server's. Each feeds the bytes whole and byte by byte and
checks both give the same events (chunk boundaries must never change what is understood),
that the reader stays within its memory bound, and that every line either parses or raises
``ProtocolError``. Anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Callable

from syncrox.errors import ProtocolError
from syncrox.protocol import chat as proto
from syncrox.protocol.chat_frames import ChatFrames, ImageChunk, ImageEnd, ImageStart, Line

MAX_LINE_BYTES = 64
MAX_IMAGE_BYTES = 256
MAX_HEADER_BYTES = 96

Outcome = tuple[str, object]


def server_frames() -> ChatFrames:
    return ChatFrames(
        max_line_bytes=MAX_LINE_BYTES,
        max_image_bytes=MAX_IMAGE_BYTES,
        max_header_bytes=MAX_HEADER_BYTES,
    )


def client_frames() -> ChatFrames:
    return ChatFrames(
        max_line_bytes=MAX_LINE_BYTES,
        max_image_bytes=MAX_IMAGE_BYTES,
        image_word="IMG_DATA",
        header_fields=4,
        max_header_bytes=MAX_HEADER_BYTES,
    )


def read_events(make: Callable[[], ChatFrames], data: bytes, chunk: int) -> list[Outcome]:
    """Every event and error, with an image's chunks joined (their boundaries are the
    transport's business) and checked against the reader's memory bound."""
    frames = make()
    outcomes: list[Outcome] = []
    image = bytearray()
    for start in range(0, len(data), chunk):
        frames.feed(data[start : start + chunk])
        while True:
            try:
                event = frames.next_event()
            except ProtocolError as exc:
                if image:
                    outcomes.append(("partial", bytes(image)))
                    image.clear()
                outcomes.append(("error", exc.code))
                continue
            if event is None:
                break
            if isinstance(event, ImageChunk):
                assert event.data
                image += event.data
                continue
            if isinstance(event, ImageEnd):
                assert event.size == len(image) <= MAX_IMAGE_BYTES
                outcomes.append(("image", bytes(image)))
                image.clear()
                continue
            outcomes.append((type(event).__name__, event))
        assert frames.buffered_bytes <= max(MAX_LINE_BYTES, MAX_HEADER_BYTES) + 2 + chunk
    return outcomes


def _normalise(outcomes: list[Outcome]) -> list[Outcome]:
    # A bad image may be refused after some good quanta arrived (byte by byte) or before
    # any (whole): the partial bytes a consumer then discards may differ, nothing else.
    return [outcome for outcome in outcomes if outcome[0] != "partial"]


def _check(make: Callable[[], ChatFrames], data: bytes) -> list[Outcome]:
    whole = read_events(make, data, len(data) or 1)
    bytewise = read_events(make, data, 1)
    assert _normalise(whole) == _normalise(bytewise), (whole, bytewise)
    return whole


def chat_line(data: bytes) -> None:
    for kind, value in _check(server_frames, data):
        try:
            if isinstance(value, Line):
                assert len(value.text.encode()) <= MAX_LINE_BYTES
                proto.parse_chat_command(value.text)
            elif isinstance(value, ImageStart):
                proto.parse_image_header(value.fields)
        except ProtocolError:
            pass
        assert kind in ("Line", "ImageStart", "image", "error")


def chat_server_line(data: bytes) -> None:
    for _, value in _check(client_frames, data):
        try:
            if isinstance(value, Line):
                proto.parse_server_line(value.text)
            elif isinstance(value, ImageStart):
                proto.parse_image_data_header(value.fields)
        except ProtocolError:
            pass
