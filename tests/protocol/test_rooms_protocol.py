from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets_foundation import rooms_command
from syncrox.errors import RemoteProtocolError
from syncrox.protocol import rooms as proto

TOKEN = "T" * 32


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("CREATE alice", proto.Create("alice")),
        ("create alice", proto.Create("alice")),
        ("JOIN 1234 bob", proto.Join("1234", "bob")),
        (f"JOIN 1234 bob {TOKEN}", proto.Join("1234", "bob", TOKEN)),
        ("  EXISTS\t1234 ", proto.Exists("1234")),
        ("LIST", proto.ListRooms()),
        (f"WHOAMI {TOKEN}", proto.WhoAmI(TOKEN)),
        (f"LEAVE {TOKEN}", proto.Leave(TOKEN)),
        ("PING", proto.Ping()),
        ("bye", proto.Bye()),
    ],
)
def test_commands_parse(line: str, command: proto.RoomsCommand) -> None:
    assert proto.parse_rooms_command(line) == command


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("", "BAD_COMMAND"),
        ("   ", "BAD_COMMAND"),
        ("HELLO world", "BAD_COMMAND"),
        ("CR3ATE x", "BAD_COMMAND"),
        ("CREATE", "BAD_ARGUMENT"),
        ("CREATE Abu Bakar", "BAD_ARGUMENT"),
        ("CREATE <script>", "BAD_USER"),
        ("JOIN 12 bob", "BAD_ROOM"),
        ("JOIN 1234 bob short", "BAD_TOKEN"),
        ("EXISTS ../etc", "BAD_ROOM"),
        ("LIST everything", "BAD_ARGUMENT"),
    ],
)
def test_bad_commands_raise_protocol_errors_with_codes(line: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        proto.parse_rooms_command(line)
    assert info.value.code == code


@given(st.text(max_size=200))
def test_parser_returns_a_command_or_raises_protocol_error(line: str) -> None:
    try:
        command = proto.parse_rooms_command(line)
    except RemoteProtocolError:
        return
    assert isinstance(command, proto.RoomsCommand)


@given(st.binary(max_size=300))
def test_fuzz_target_holds_for_random_bytes(data: bytes) -> None:
    rooms_command(data)


def test_replies_round_trip() -> None:
    assert proto.expect_reply(proto.format_room("1234", TOKEN), "ROOM", 2) == ["1234", TOKEN]
    assert proto.parse_rooms_reply(proto.format_rooms(["1234", "5678"])) == ["1234", "5678"]
    assert proto.parse_rooms_reply("ROOMS") == []
    with pytest.raises(RemoteProtocolError):
        proto.expect_reply("ROOMS 1234", "ROOM", 2)
