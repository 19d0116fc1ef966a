"""The chat line protocol: commands, server lines, timestamps, image types."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets_chat import chat_line, chat_server_line
from syncrox.errors import RemoteProtocolError
from syncrox.protocol import chat as proto

TOKEN = "T" * 32
DIGEST = "ab" * 32


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("HELLO alice 4821", proto.Hello("alice", "4821")),
        (f"hello alice 4821 {TOKEN}", proto.Hello("alice", "4821", TOKEN)),
        ("  HELLO\tbob   4821 ", proto.Hello("bob", "4821")),
        ("MSG hi", proto.Msg("hi")),
        ("msg  two  spaces kept ", proto.Msg(" two  spaces kept ")),
        ("MSG\ttab separated", proto.Msg("tab separated")),
        ("MSG <script>alert(1)</script>", proto.Msg("<script>alert(1)</script>")),
        ("MSG héllo wörld 日本", proto.Msg("héllo wörld 日本")),
        ("GET_IMG 17", proto.GetImage(image_id=17)),
        ("get_img cat.png", proto.GetImage(name="cat.png")),
        ("HISTORY", proto.History()),
        ("HISTORY since 5", proto.History(since=5)),
        ("HISTORY limit 3 since 0", proto.History(since=0, limit=3)),
        ("history SINCE 9 LIMIT 1000", proto.History(since=9, limit=1000)),
        ("WHO", proto.Who()),
        ("TYPING", proto.Typing()),
        ("PING", proto.Ping()),
        ("bye", proto.Bye()),
    ],
)
def test_commands_parse(line: str, command: proto.ChatCommand) -> None:
    assert proto.parse_chat_command(line) == command


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("", "BAD_COMMAND"),
        ("  ", "BAD_COMMAND"),
        ("FROB x", "BAD_COMMAND"),
        ("MS5G hi", "BAD_COMMAND"),
        ("JOIN_ROOM 1234", "BAD_COMMAND"),
        ("HELLO alice", "BAD_ARGUMENT"),
        ("HELLO Abu Bakar 4821", "BAD_ROOM"),
        ("HELLO alice 4821 short", "BAD_TOKEN"),
        ("HELLO a/b 4821", "BAD_USER"),
        ("HELLO alice 0123", "BAD_ROOM"),
        ("MSG", "BAD_ARGUMENT"),
        ("MSG ", "BAD_ARGUMENT"),
        ("MSG    \t ", "BAD_ARGUMENT"),
        ("MSG bell\x07", "BAD_ARGUMENT"),
        ("MSG esc\x1b[2J", "BAD_ARGUMENT"),
        ("MSG cr\rinside", "BAD_ARGUMENT"),
        ("MSG c1\x85", "BAD_ARGUMENT"),
        ("IMG", "BAD_ARGUMENT"),
        ("GET_IMG", "BAD_ARGUMENT"),
        ("GET_IMG ../etc/passwd", "BAD_NAME"),
        ("GET_IMG /etc/passwd", "BAD_NAME"),
        ("GET_IMG .hidden", "BAD_NAME"),
        ("GET_IMG a b", "BAD_ARGUMENT"),
        ("GET_IMG 1234567890123456", "BAD_ARGUMENT"),
        ("HISTORY since", "BAD_ARGUMENT"),
        ("HISTORY since -1", "BAD_ARGUMENT"),
        ("HISTORY limit 0", "BAD_ARGUMENT"),
        ("HISTORY since 1 since 2", "BAD_ARGUMENT"),
        ("HISTORY before 3", "BAD_ARGUMENT"),
        ("HISTORY since ١٢", "BAD_ARGUMENT"),
        ("WHO am i", "BAD_ARGUMENT"),
        ("BYE now", "BAD_ARGUMENT"),
    ],
)
def test_bad_commands_raise_protocol_errors_with_codes(line: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        proto.parse_chat_command(line)
    assert info.value.code == code


@given(st.text(max_size=300))
def test_parser_returns_a_command_or_raises_protocol_error(line: str) -> None:
    try:
        command = proto.parse_chat_command(line)
    except RemoteProtocolError:
        return
    assert isinstance(command, proto.ChatCommand)


@given(st.text(min_size=1, max_size=200).filter(lambda t: t.strip()))
def test_message_content_is_kept_exactly_or_refused(content: str) -> None:
    has_control = any((ch < " " and ch != "\t") or "\x7f" <= ch <= "\x9f" for ch in content)
    if has_control:
        with pytest.raises(RemoteProtocolError, match="control character"):
            proto.parse_chat_command("MSG " + content)
    else:
        assert proto.parse_chat_command("MSG " + content) == proto.Msg(content)


def test_image_header_needs_one_valid_file_name() -> None:
    assert proto.parse_image_header(("cat.png",)) == "cat.png"
    for fields, code in [
        ((), "BAD_ARGUMENT"),
        (("a", "b"), "BAD_ARGUMENT"),
        (("../x.png",), "BAD_NAME"),
        (("x" * 201,), "BAD_NAME"),
    ]:
        with pytest.raises(RemoteProtocolError) as info:
            proto.parse_image_header(fields)
        assert info.value.code == code


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", "image/jpeg"),
        (b"GIF87a\x01\x00\x01\x00\x00\x00", "image/gif"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"<svg xmlns='http", None),
        (b"%PDF-1.7\n%\xe2\xe3", None),
        (b"\x89PN", None),
        (b"", None),
    ],
)
def test_image_types_come_from_magic_bytes(head: bytes, mime: str | None) -> None:
    assert proto.sniff_image_type(head) == mime


users = st.text(
    alphabet=st.characters(categories=("Ll", "Lu", "Nd")) | st.sampled_from("_-."),
    min_size=1,
    max_size=32,
).filter(lambda u: proto.validate_user(u) if _valid_user(u) else False)
contents = st.text(min_size=1, max_size=100).filter(
    lambda t: t.strip() and _valid_content(t) and "\n" not in t
)
timestamps = st.integers(min_value=0, max_value=253402300799999)  # up to year 9999


def _valid_user(user: str) -> bool:
    try:
        proto.validate_user(user)
    except RemoteProtocolError:
        return False
    return True


def _valid_content(text: str) -> bool:
    try:
        proto.validate_content(text)
    except RemoteProtocolError:
        return False
    return True


@given(st.integers(min_value=1, max_value=10**12), timestamps, users, contents)
def test_message_lines_round_trip(id_: int, ts_ms: int, user: str, content: str) -> None:
    event = proto.ChatMessage(id_, ts_ms, user, content)
    line = proto.format_event(event)
    assert proto.parse_server_line(line) == event
    assert proto.parse_server_line("HIST " + line) == proto.Hist(event)


@given(timestamps)
def test_timestamps_are_utc_milliseconds_and_round_trip(ts_ms: int) -> None:
    text = proto.format_timestamp(ts_ms)
    assert len(text) == 24
    assert text.endswith("Z")
    assert proto.parse_timestamp(text) == ts_ms


def test_timestamp_format_is_iso_8601_utc() -> None:
    assert proto.format_timestamp(1_767_607_200_123) == "2026-01-05T10:00:00.123Z"


def test_server_lines_parse() -> None:
    meta = proto.ImageMeta(16, "image/png", DIGEST, "cat.png")
    image = proto.ImageMessage(3, 1_767_607_200_000, "bob", meta)
    assert proto.format_event(image) == (
        f"IMG 3 2026-01-05T10:00:00.000Z bob 16 image/png {DIGEST} cat.png"
    )
    assert proto.parse_server_line(proto.format_event(image)) == image
    assert proto.parse_server_line(proto.format_welcome("4821", "alice", 7)) == proto.Welcome(
        "4821", "alice", 7
    )
    assert proto.parse_server_line("OK MSG 12") == proto.Ok("MSG", 12)
    assert proto.parse_server_line("OK TYPING") == proto.Ok("TYPING")
    assert proto.parse_server_line("JOINED bob") == proto.Joined("bob")
    assert proto.parse_server_line("LEFT bob") == proto.Left("bob")
    assert proto.parse_server_line("TYPING bob") == proto.TypingNotice("bob")
    assert proto.parse_server_line(proto.format_users(["a", "b"])) == proto.Users(("a", "b"))
    assert proto.parse_server_line(proto.format_history_end(3, True)) == proto.HistoryEnd(3, True)
    assert proto.parse_server_line("PONG") == proto.Pong()
    assert proto.parse_server_line("ERR OVERFLOW too slow") == proto.ErrorReply(
        "OVERFLOW", "too slow"
    )
    header = proto.format_image_data_header(3, meta)
    assert header == "IMG_DATA 3 16 image/png cat.png "
    assert proto.parse_image_data_header(tuple(header.split()[1:])) == (
        3,
        proto.ImageMeta(16, "image/png", "", "cat.png"),
    )


@pytest.mark.parametrize(
    "line",
    [
        "MSG 1 2026-01-05T10:00:00.000Z",
        "MSG x 2026-01-05T10:00:00.000Z a hi",
        "MSG 1 2026-13-05T10:00:00.000Z a hi",
        "MSG 1 yesterday a hi",
        f"IMG 1 2026-01-05T10:00:00.000Z a 16 text/html {DIGEST} x.png",
        "IMG 1 2026-01-05T10:00:00.000Z a 16 image/png nothex x.png",
        "HIST JOINED bob",
        "HISTORY_END 1 2",
        "OK HELLO 4821 alice",
        "OK WHATEVER",
        "JOINED two words",
        "SURPRISE",
    ],
)
def test_malformed_server_lines_raise_protocol_errors(line: str) -> None:
    with pytest.raises(RemoteProtocolError):
        proto.parse_server_line(line)


@given(st.text(max_size=300))
def test_server_line_parser_returns_or_raises_protocol_error(line: str) -> None:
    try:
        parsed = proto.parse_server_line(line)
    except RemoteProtocolError:
        return
    assert isinstance(parsed, proto.ServerLine)


@given(st.binary(max_size=600))
def test_fuzz_targets_hold_for_random_bytes(data: bytes) -> None:
    chat_line(data)
    chat_server_line(data)
