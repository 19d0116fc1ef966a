from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.names import (
    user_key,
    validate_filename,
    validate_room_code,
    validate_token,
    validate_user,
)


@pytest.mark.parametrize("name", ["alice", "Bob_2", "zoë", "李雷", "a.b-c", "x" * 32])
def test_good_user_names(name: str) -> None:
    assert validate_user(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 33, "Abu Bakar", "a\tb", "a:b", "a,b", "<img>", "a/b", "e\u0301", "a\x00"],
)
def test_bad_user_names(name: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        validate_user(name)
    assert info.value.code == "BAD_USER"


def test_user_key_ignores_case() -> None:
    assert user_key("Alice") == user_key("alice")


@pytest.mark.parametrize("code", ["1000", "4821", "9999"])
def test_good_room_codes(code: str) -> None:
    assert validate_room_code(code) == code


@pytest.mark.parametrize("code", ["", "999", "0123", "12345", "12a4", "١٢٣٤", " 123", "../1"])
def test_bad_room_codes(code: str) -> None:
    with pytest.raises(RemoteProtocolError):
        validate_room_code(code)


@pytest.mark.parametrize("name", ["report.pdf", "my notes.txt", "données.csv", "a" * 200])
def test_good_file_names(name: str) -> None:
    assert validate_filename(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../etc/passwd", "/etc/passwd", "a/b", "a\\b", ".hidden", "trail.",
     "trail ", "nul\x00", "tab\tname", "a" * 201, "C:evil", "é" * 101, "new\nline"],
)  # fmt: skip
def test_bad_file_names(name: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        validate_filename(name)
    assert info.value.code == "BAD_NAME"


def test_tokens() -> None:
    assert validate_token("A" * 32)
    for bad in ("short", "A" * 65, "A" * 31 + "!"):
        with pytest.raises(RemoteProtocolError):
            validate_token(bad)


@given(st.text(max_size=60))
def test_validators_accept_or_raise_protocol_error_only(text: str) -> None:
    for validator in (validate_user, validate_room_code, validate_token, validate_filename):
        try:
            assert validator(text) == text
        except RemoteProtocolError:
            pass


@given(st.text(max_size=60))
def test_accepted_file_names_are_single_safe_path_components(text: str) -> None:
    try:
        name = validate_filename(text)
    except RemoteProtocolError:
        return
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert name.isprintable()
