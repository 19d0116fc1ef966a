"""File Control's grammar: strict single-space fields before a file name, no leading blank,
public transfer ids; the parser refuses only with ``RemoteProtocolError``."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fuzz.targets_files import files_command
from syncrox.errors import RemoteProtocolError
from syncrox.protocol import files as proto
from syncrox.protocol.names import validate_filename

SHA = "ab" * 32
LIMIT = 1 << 30


# Mostly valid file names (letters and digits of any script, spaces, punctuation), so few
# are filtered out.
_name_chars = st.characters(categories=("L", "N")) | st.sampled_from(" -_,.()&'+")
filenames = st.text(_name_chars, min_size=1, max_size=40)


def parse(line: str) -> proto.FilesCommand:
    return proto.parse_files_command(line, max_file_bytes=LIMIT)


def is_filename(text: str) -> bool:
    try:
        validate_filename(text)
    except RemoteProtocolError:
        return False
    return True


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("DELETE foo.txt", proto.Delete("foo.txt")),
        ("delete my  notes.txt", proto.Delete("my  notes.txt")),  # spaces inside a name
        ("DOWNLOAD a b.txt", proto.Download("a b.txt")),
        (f"UPLOAD 10 {SHA} x y.bin", proto.Upload(10, SHA, "x y.bin")),
        ("LIST", proto.ListFiles()),
        ("TRANSFERS", proto.ListTransfers()),
        (f"METRICS {'0' * 32} QLOG", proto.Metrics("0" * 32, "qlog")),
    ],
)
def test_commands_parse(line: str, command: proto.FilesCommand) -> None:
    assert parse(line) == command


@pytest.mark.parametrize(
    ("line", "code"),
    [
        # A leading blank used to shift the split: this deleted the file "DELETE foo.txt".
        (" DELETE foo.txt", "BAD_COMMAND"),
        ("\tDOWNLOAD foo.txt", "BAD_COMMAND"),
        (" LIST", "BAD_COMMAND"),
        # A second blank used to become part of the name: this asked for " foo.txt".
        ("DOWNLOAD  foo.txt", "BAD_ARGUMENT"),
        ("DELETE  foo.txt", "BAD_ARGUMENT"),
        ("DELETE \tfoo.txt", "BAD_ARGUMENT"),
        (f"UPLOAD 10 {SHA}  x.bin", "BAD_ARGUMENT"),
        (f"UPLOAD  10 {SHA} x.bin", "BAD_ARGUMENT"),
        (f"UPLOAD 10  {SHA} x.bin", "BAD_ARGUMENT"),
        ("DELETE ", "BAD_ARGUMENT"),
        ("DELETE", "BAD_ARGUMENT"),
        ("DELETE\tfoo.txt", "BAD_ARGUMENT"),
        ("DELETE foo.txt ", "BAD_NAME"),
        ("", "BAD_COMMAND"),
    ],
)
def test_blanks_around_fields_are_refused(line: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse(line)
    assert info.value.code == code


@given(filenames)
def test_a_name_parses_back_exactly_and_only_after_one_space(name: str) -> None:
    assume(is_filename(name) and not name[0].isspace())
    assert parse(f"DOWNLOAD {name}") == proto.Download(name)
    assert parse(f"DELETE {name}") == proto.Delete(name)
    assert parse(f"UPLOAD 7 {SHA} {name}") == proto.Upload(7, SHA, name)
    for bad in (f"DOWNLOAD  {name}", f"DELETE  {name}", f" DELETE {name}"):
        with pytest.raises(RemoteProtocolError):
            parse(bad)


@given(st.text(max_size=200))
def test_parser_returns_a_command_or_raises_protocol_error(line: str) -> None:
    try:
        command = parse(line)
    except RemoteProtocolError:
        return
    assert not line[:1].isspace()
    if isinstance(command, proto.Download | proto.Delete | proto.Upload):
        assert line.endswith(" " + command.name) and not command.name[0].isspace()


@given(filenames)
def test_a_name_beginning_with_a_blank_cannot_be_told_from_a_second_separator(name: str) -> None:
    assume(is_filename(" " + name))
    for line in (f"DOWNLOAD  {name}", f"DELETE  {name}", f"UPLOAD 7 {SHA}  {name}"):
        with pytest.raises(RemoteProtocolError) as info:
            parse(line)
        assert info.value.code == "BAD_ARGUMENT"


@given(st.binary(max_size=300))
def test_fuzz_target_holds_for_random_bytes(data: bytes) -> None:
    files_command(data)


@given(st.binary(min_size=16, max_size=16))
def test_a_transfer_id_is_public_and_does_not_reveal_the_session_id(raw: bytes) -> None:
    session_id = raw.hex()
    transfer_id = proto.transfer_id_of(session_id)
    assert transfer_id == proto.check_session_id(transfer_id)  # 32 lower-case hex digits
    assert transfer_id != session_id and session_id not in transfer_id
    assert proto.transfer_id_of(session_id) == transfer_id  # stable: client and server agree


def test_a_transfer_line_is_plain_words_the_terminal_can_print() -> None:
    tid = "ab" * 16
    good = f"TRANSFER {tid} upload failed:IDLE newreno binary 10 1700000000 a.bin"
    entry = proto.parse_transfer(good)
    assert (entry.status, entry.algo, entry.codec) == ("failed:IDLE", "newreno", "binary")
    for bad in ("\x1b[2J", "x" * 33, ""):  # a hostile server's terminal escape, and so on
        line = f"TRANSFER {tid} upload stored {bad} binary 10 1700000000 a.bin"
        with pytest.raises(RemoteProtocolError):
            proto.parse_transfer(line)
