"""The chat stream reader: bounded lines, and images decoded as they stream in."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets_chat import read_events, server_frames
from syncrox.errors import ProtocolError
from syncrox.protocol.chat_frames import ChatFrames, ImageChunk, ImageEnd, ImageStart, Line

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


def events(data: bytes, chunk: int = 1 << 20, **limits: int) -> list[object]:
    frames = ChatFrames(
        max_line_bytes=limits.get("line", 64), max_image_bytes=limits.get("image", 1000)
    )
    out: list[object] = []
    for start in range(0, len(data), chunk):
        frames.feed(data[start : start + chunk])
        while True:
            try:
                event = frames.next_event()
            except ProtocolError as exc:
                out.append(exc.code)
                continue
            if event is None:
                break
            out.append(event)
    return out


def joined(items: list[object]) -> list[object]:
    """Consecutive image chunks as one (how they were split is the transport's business)."""
    out: list[object] = []
    for item in items:
        if isinstance(item, ImageChunk) and out and isinstance(out[-1], ImageChunk):
            out[-1] = ImageChunk(out[-1].data + item.data)
        else:
            out.append(item)
    return out


def test_lines_and_an_image_whole_or_byte_by_byte() -> None:
    data = b"MSG hi\r\n  img a.png " + base64.b64encode(PNG) + b"\r\nPING\n"
    expected = [
        Line("MSG hi"),
        ImageStart(("a.png",)),
        ImageChunk(PNG),
        ImageEnd(len(PNG)),
        Line("PING"),
    ]
    assert joined(events(data)) == expected
    assert joined(events(data, chunk=1)) == expected
    assert joined(events(data, chunk=7)) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"x" * 65 + b"\nPING\n", ["LINE_TOO_LONG", Line("PING")]),
        (b"x" * 64 + b"\r\nPING\n", [Line("x" * 64), Line("PING")]),
        (b"MSG \xff\nPING\n", ["BAD_UTF8", Line("PING")]),
        (b"IMG a.png QQ==QUJD\nPING\n", [ImageStart(("a.png",)), "BAD_ARGUMENT", Line("PING")]),
        (b"IMG a.png QUJ\nPING\n", [ImageStart(("a.png",)), "BAD_ARGUMENT", Line("PING")]),
        (b"IMG a.png QU JD\nPING\n", [ImageStart(("a.png",)), "BAD_ARGUMENT", Line("PING")]),
        (b"IMG a.png\nPING\n", ["BAD_ARGUMENT", Line("PING")]),
        (b"IMG\nPING\n", [Line("IMG"), Line("PING")]),
        (b"IMGX a b\n", [Line("IMGX a b")]),
        (b"IMG " + b"n" * 600 + b" QUJD\nPING\n", ["BAD_ARGUMENT", Line("PING")]),
        (b"IMG \xff.png QUJD\nPING\n", ["BAD_UTF8", Line("PING")]),
        (b"IMG a.png \r\n", [ImageStart(("a.png",)), ImageEnd(0)]),
    ],
)
def test_refused_lines_are_dropped_and_the_stream_goes_on(
    data: bytes, expected: list[object]
) -> None:
    for chunk in (1, 3, len(data)):
        assert [e for e in joined(events(data, chunk)) if not isinstance(e, ImageChunk)] == expected


def test_an_image_over_the_limit_is_refused_as_it_arrives() -> None:
    data = b"IMG big.png " + base64.b64encode(b"z" * 5000) + b"\nWHO\n"
    got = events(data, chunk=100, image=1000)
    assert got[0] == ImageStart(("big.png",))
    assert "TOO_LARGE" in got
    delivered = sum(len(e.data) for e in got if isinstance(e, ImageChunk))
    assert delivered <= 1000
    assert got[-1] == Line("WHO")


def test_a_consumer_can_refuse_an_image_and_skip_its_line() -> None:
    frames = server_frames()
    frames.feed(b"IMG a.png QUJD")
    assert frames.next_event() == ImageStart(("a.png",))
    frames.skip_line()
    frames.feed(b"QUJDQUJD" * 10 + b"\nPING\n")
    assert frames.next_event() == Line("PING")
    assert frames.next_event() is None


def test_memory_stays_bounded_while_a_huge_image_streams() -> None:
    """A 12 MB image line never leaves more than one received chunk in the reader."""
    frames = ChatFrames(max_line_bytes=4096, max_image_bytes=10 * 1024 * 1024)
    encoded = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x01" * (9 * 1024 * 1024))
    frames.feed(b"IMG huge.png ")
    assert frames.next_event() is None  # the header ends where the base64 begins
    total = 0
    for start in range(0, len(encoded), 65536):
        frames.feed(encoded[start : start + 65536])
        while (event := frames.next_event()) is not None:
            if isinstance(event, ImageChunk):
                total += len(event.data)
            else:
                assert event == ImageStart(("huge.png",))
        assert frames.buffered_bytes <= 4
    frames.feed(b"\n")
    assert frames.next_event() == ImageEnd(total)
    assert total == 9 * 1024 * 1024 + 8


def test_client_side_reader_streams_img_data_replies() -> None:
    frames = ChatFrames(
        max_line_bytes=64, max_image_bytes=1000, image_word="IMG_DATA", header_fields=4
    )
    frames.feed(b"IMG 3 2026-01-05T10:00:00.000Z bob 16 image/png x a.png\n")
    frames.feed(b"IMG_DATA 3 208 image/png a.png " + base64.b64encode(PNG) + b"\n")
    assert isinstance(frames.next_event(), Line)
    assert frames.next_event() == ImageStart(("3", "208", "image/png", "a.png"))
    assert frames.next_event() == ImageChunk(PNG)
    assert frames.next_event() == ImageEnd(208)


lines = st.lists(
    st.one_of(
        st.binary(max_size=80),
        st.builds(
            lambda name, data, end: b"IMG " + name + b" " + base64.b64encode(data) + end,
            st.sampled_from([b"a.png", b"b", b"\xff", b"x" * 100]),
            st.binary(max_size=400),
            st.sampled_from([b"\n", b"\r\n", b"", b"=\n", b" x\n"]),
        ),
        st.sampled_from([b"MSG hi\n", b"PING\n", b"\n", b"\r\n", b"   ", b"IMG", b" IMG "]),
    ),
    max_size=12,
)


@given(lines, st.integers(min_value=1, max_value=50))
def test_any_chunking_gives_the_same_events_within_the_memory_bound(
    parts: list[bytes], chunk: int
) -> None:
    data = b"".join(parts)
    whole = [e for e in read_events(server_frames, data, len(data) or 1) if e[0] != "partial"]
    split = [e for e in read_events(server_frames, data, chunk) if e[0] != "partial"]
    assert whole == split


@given(st.binary(min_size=1, max_size=300))
def test_any_image_arrives_byte_for_byte(image: bytes) -> None:
    data = b"IMG a.png " + base64.b64encode(image) + b"\n"
    for chunk in (1, 5, len(data)):
        got = joined(events(data, chunk))
        assert got == [ImageStart(("a.png",)), ImageChunk(image), ImageEnd(len(image))]
