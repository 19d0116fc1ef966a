from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets_foundation import split_lines
from syncrox.errors import BAD_UTF8, LINE_TOO_LONG, LocalProtocolError, RemoteProtocolError
from syncrox.protocol.framing import (
    FrameBuffer,
    encode_line,
    format_error,
    parse_error,
    parse_size,
)


def lines_of(buffer: FrameBuffer) -> list[str | tuple[str, str]]:
    out: list[str | tuple[str, str]] = []
    while True:
        try:
            line = buffer.next_line()
        except RemoteProtocolError as exc:
            out.append(("ERR", exc.code))
            continue
        if line is None:
            return out
        out.append(line)


def test_lines_split_on_newline_and_drop_carriage_return() -> None:
    buffer = FrameBuffer(100)
    buffer.feed(b"one\r\ntwo\nthr")
    assert lines_of(buffer) == ["one", "two"]
    buffer.feed(b"ee\n")
    assert lines_of(buffer) == ["three"]


def test_line_of_exactly_max_bytes_passes_one_more_fails() -> None:
    buffer = FrameBuffer(5)
    buffer.feed(b"12345\n123456\nok\n")
    assert lines_of(buffer) == ["12345", ("ERR", LINE_TOO_LONG), "ok"]


def test_over_long_line_is_refused_before_its_end_arrives() -> None:
    buffer = FrameBuffer(8)
    buffer.feed(b"x" * 20)
    assert lines_of(buffer) == [("ERR", LINE_TOO_LONG)]
    assert buffer.buffered_bytes == 0
    buffer.feed(b"y" * 1000)  # still inside the same line: discarded, no second error
    assert lines_of(buffer) == []
    buffer.feed(b"zzz\nnext\n")
    assert lines_of(buffer) == ["next"]


def test_crlf_line_at_the_limit_is_accepted() -> None:
    buffer = FrameBuffer(4)
    buffer.feed(b"abcd\r\n")
    assert lines_of(buffer) == ["abcd"]


def test_invalid_utf8_line_is_refused_and_the_next_line_survives() -> None:
    buffer = FrameBuffer(100)
    buffer.feed(b"ok\n\xff\xfe bad\nfine\n")
    assert lines_of(buffer) == ["ok", ("ERR", BAD_UTF8), "fine"]


def test_body_follows_header_exactly() -> None:
    buffer = FrameBuffer(100)
    buffer.feed(b"PUT 5\nhel")
    assert buffer.next_line() == "PUT 5"
    assert buffer.next_body(5) is None
    buffer.feed(b"lo\nnext\n")
    assert buffer.next_body(5) == b"hello"
    assert lines_of(buffer) == ["", "next"]


def test_encode_line_refuses_line_breaks() -> None:
    assert encode_line("héllo") == "héllo\n".encode()
    with pytest.raises(LocalProtocolError):
        encode_line("two\nlines")
    with pytest.raises(LocalProtocolError):
        encode_line("lone surrogate \ud800")


def test_error_lines_round_trip_and_are_single_line_and_bounded() -> None:
    line = format_error("BAD_ROOM", "room\ncode " + "x" * 500)
    assert "\n" not in line and len(line) < 260
    assert parse_error(line) == ("BAD_ROOM", line.split(" ", 2)[2])
    assert parse_error("OK") is None
    assert parse_error("ERR") == ("UNKNOWN", "")


@pytest.mark.parametrize("text", ["", "-1", "1e3", "0x10", " 1", "１２", "9" * 13])  # noqa: RUF001
def test_parse_size_refuses_anything_but_plain_decimal(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_size(text, limit=10**15)


def test_parse_size_enforces_the_limit() -> None:
    assert parse_size("100", limit=100) == 100
    with pytest.raises(RemoteProtocolError) as info:
        parse_size("101", limit=100)
    assert info.value.code == "TOO_LARGE"


@given(st.binary(max_size=400), st.lists(st.integers(1, 80), min_size=1, max_size=8))
def test_chunking_never_changes_what_is_understood(data: bytes, chunks: list[int]) -> None:
    assert split_lines(data, chunks) == split_lines(data, [len(data) or 1])


@given(
    st.lists(
        st.text(
            alphabet=st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]),
            max_size=20,
        )
    )
)
def test_well_formed_lines_come_back_unchanged(texts: list[str]) -> None:
    buffer = FrameBuffer(1000)
    buffer.feed(b"".join(encode_line(text) for text in texts))
    assert lines_of(buffer) == texts
