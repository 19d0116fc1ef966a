"""The collab wire protocol: lines, lib0 varints, y-protocols messages and frames."""

from __future__ import annotations

import functools

import pycrdt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncrox.errors import ProtocolError, RemoteProtocolError
from syncrox.protocol import collab as proto

parse = functools.partial(proto.parse_collab_command, max_frame_bytes=1000)
TOKEN = "A" * 32


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("HELLO alice 1234", proto.Hello("alice", "1234")),
        (f"hello alice 1234 {TOKEN}", proto.Hello("alice", "1234", TOKEN)),
        (f"AUTH {TOKEN}", proto.Auth(TOKEN)),
        ("LANGS", proto.Langs()),
        ("OPEN python", proto.Open("python")),
        ("open PY", proto.Open("python")),
        ("OPEN c++", proto.Open("cpp")),
        ("OPEN java", proto.Open("java")),
        ("YMSG 0", proto.FrameHeader(0)),
        ("ymsg 1000", proto.FrameHeader(1000)),
        ("PING", proto.Ping()),
        ("BYE", proto.Bye()),
    ],
)
def test_commands(line: str, command: proto.CollabCommand) -> None:
    assert parse(line) == command


@pytest.mark.parametrize(
    ("line", "code", "fatal"),
    [
        ("", "BAD_COMMAND", False),
        ("FROB", "BAD_COMMAND", False),
        ("HELLO alice", "BAD_ARGUMENT", False),
        ("HELLO alice 12", "BAD_ROOM", False),
        ("HELLO <b> 1234", "BAD_USER", False),
        ("AUTH short", "BAD_TOKEN", False),
        ("OPEN cobol", "BAD_LANGUAGE", False),
        ("OPEN", "BAD_ARGUMENT", False),
        ("YMSG", "BAD_ARGUMENT", True),
        ("YMSG 1 2", "BAD_ARGUMENT", True),
        ("YMSG -1", "BAD_ARGUMENT", True),
        ("YMSG 1e3", "BAD_ARGUMENT", True),
        ("YMSG 1001", "TOO_LARGE", True),
        ("YMSG ٣", "BAD_ARGUMENT", True),  # a non-ASCII digit
        ("PING now", "BAD_ARGUMENT", False),
    ],
)
def test_bad_commands(line: str, code: str, fatal: bool) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse(line)
    assert caught.value.code == code
    assert caught.value.fatal is fatal


@given(st.text(max_size=80))
def test_any_line_parses_or_raises_protocol_error(line: str) -> None:
    try:
        parse(line)
    except ProtocolError:
        pass


def test_server_lines_round_trip() -> None:
    parse_server = functools.partial(proto.parse_server_line, max_frame_bytes=100)
    assert parse_server(proto.format_hello("1234", "bob")) == proto.Welcome("1234", "bob")
    assert parse_server(proto.format_langs()) == proto.LangList(proto.LANGUAGES)
    opened = proto.format_opened("cpp", 10, 20, 30)
    assert parse_server(opened) == proto.Opened("cpp", 10, 20, 30)
    assert parse_server(proto.format_frame_header(100)) == proto.FrameHeader(100)
    assert parse_server(proto.format_ack(7)) == proto.Ack(7)
    assert parse_server("PONG") == proto.Pong()
    assert parse_server("OK BYE") == proto.Goodbye()
    for bad in ("YMSG 101", "ACK x", "OPENED cobol 1 2 3", "HELLO", "OK HELLO 12 bob", "ACK 1" * 9):
        with pytest.raises(RemoteProtocolError):
            parse_server(bad)


@given(st.integers(min_value=0, max_value=proto.MAX_VAR_UINT))
def test_var_uint_round_trip(value: int) -> None:
    encoded = proto.write_var_uint(value)
    assert len(encoded) <= 8
    assert proto.read_var_uint(encoded + b"\xff", 0) == (value, len(encoded))
    # The same encoding as pycrdt's (lib0's) writer.
    assert encoded == pycrdt.write_var_uint(value)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", b"\xff" * 7, b"\xff" * 9, b"\xff" * 7 + b"\x7f"],  # the last is 2**56 - 1
)
def test_bad_var_uints(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        proto.read_var_uint(data, 0)
    assert caught.value.code == proto.BAD_MESSAGE


def test_frame_of_every_message_type_round_trips() -> None:
    doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    doc.get("code", type=pycrdt.Text).insert(0, "héllo")
    entry = proto.AwarenessEntry(2**53 - 1, 3, '{"cursor":null,"member":"zoé"}')
    messages: list[proto.YMessage] = [
        proto.SyncStep1(doc.get_state()),
        proto.SyncStep2(doc.get_update()),
        proto.SyncUpdate(doc.get_update()),
        proto.AwarenessUpdate((entry, proto.AwarenessEntry(1, 0, "null"))),
        proto.QueryAwareness(),
    ]
    body = b"".join(proto.encode_message(message) for message in messages)
    assert proto.decode_frame(body, max_messages=5) == messages
    assert proto.encode_update(b"abc") == proto.encode_message(proto.SyncUpdate(b"abc"))
    framed = proto.encode_frame([proto.encode_update(b"abc")])
    assert framed == b"YMSG 6\n" + b"\x00\x02\x03abc"


def test_sync_messages_match_pycrdt_encoding() -> None:
    """pycrdt implements the same y-protocols framing (one message per call)."""
    doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    doc.get("code", type=pycrdt.Text).insert(0, "x")
    assert proto.encode_message(proto.SyncStep1(doc.get_state())) == pycrdt.create_sync_message(doc)
    update = doc.get_update()
    assert proto.encode_update(update) == pycrdt.create_update_message(update)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"\x02", "unknown message type"),
        (b"\x00\x03\x00", "unknown sync"),
        (b"\x00\x02\x05ab", "past the end"),
        (b"\x00\x00\x03\x05\x01\x02", "more entries"),  # state vector: 5 entries in 3 bytes
        (b"\x00\x00\x02\x01\x01", "truncated"),
        (b"\x00\x00\x04\x01\x01\x02\x09", "trailing"),
        (b"\x01\x05\x01\x01\x01\x01\xff", "not UTF-8"),
        (b"\x01\x06\x01\x01\x01\x01xy", "trailing"),
        (b"\x01\x04\x09\x01\x01\x01", "more entries"),
        (b"\x03" * 6, "more than 5"),
    ],
)
def test_malformed_frames_are_refused_whole(body: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        proto.decode_frame(body, max_messages=5)
    assert caught.value.code == proto.BAD_MESSAGE
    assert reason in caught.value.message


@given(st.binary(max_size=200))
def test_any_body_decodes_or_raises_protocol_error(body: bytes) -> None:
    try:
        messages = proto.decode_frame(body, max_messages=50)
    except ProtocolError:
        return
    # What decodes re-encodes to a frame that decodes to the very same messages.
    again = b"".join(proto.encode_message(message) for message in messages)
    assert proto.decode_frame(again, max_messages=50) == messages


def test_languages_and_aliases() -> None:
    assert proto.parse_language("PY") == "python"
    assert proto.parse_language("cxx") == "cpp"
    with pytest.raises(RemoteProtocolError) as caught:
        proto.parse_language("rust")
    assert caught.value.code == proto.BAD_LANGUAGE
