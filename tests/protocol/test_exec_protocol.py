"""The exec service's line protocol: parsing commands, formatting and parsing replies."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncrox.errors import ProtocolError, RemoteProtocolError
from syncrox.protocol import exec as proto
from syncrox.sandbox.model import ExecResult, Language, Verdict

parse = functools.partial(
    proto.parse_exec_command, max_code_bytes=65536, max_stdin_bytes=1 << 20, history_page_max=100
)
TOKEN = "A" * 32


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("HELLO alice 1234", proto.Hello("alice", "1234")),
        (f"hello alice 1234 {TOKEN}", proto.Hello("alice", "1234", TOKEN)),
        (f"AUTH {TOKEN}", proto.Auth(TOKEN)),
        ("LANGS", proto.Langs()),
        ("RUN python 10 0", proto.RunHeader("python", 10, 0)),
        ("run CPP 65536 1048576", proto.RunHeader("CPP", 65536, 1 << 20)),
        ("HISTORY", proto.History(proto.DEFAULT_HISTORY_LIMIT)),
        ("HISTORY 5", proto.History(5)),
        ("HISTORY 100000", proto.History(100)),
        ("HISTORY 0", proto.History(1)),
        ("SHOW 42", proto.Show(42)),
        ("PING", proto.Ping()),
        ("BYE", proto.Bye()),
    ],
)
def test_commands(line: str, command: proto.ExecCommand) -> None:
    assert parse(line) == command


@pytest.mark.parametrize(
    ("line", "code", "fatal"),
    [
        ("", "BAD_COMMAND", False),
        ("EXECUTE 1234 bob python 1 0", "BAD_COMMAND", False),
        ("HELLO alice", "BAD_ARGUMENT", False),
        ("HELLO alice 12", "BAD_ROOM", False),
        ("HELLO <b> 1234", "BAD_USER", False),
        ("AUTH short", "BAD_TOKEN", False),
        ("SHOW x", "BAD_ARGUMENT", False),
        ("SHOW 99999999999999999999", "BAD_ARGUMENT", False),
        ("HISTORY -1", "BAD_ARGUMENT", False),
        # A RUN whose bodies cannot be delimited closes the connection.
        ("RUN python 10", "BAD_ARGUMENT", True),
        ("RUN python 10 0 extra", "BAD_ARGUMENT", True),
        ("RUN python ten 0", "BAD_ARGUMENT", True),
        ("RUN python -1 0", "BAD_ARGUMENT", True),
        ("RUN python 65537 0", "TOO_LARGE", True),
        ("RUN python 1 1048577", "TOO_LARGE", True),
    ],
)
def test_refused_commands(line: str, code: str, fatal: bool) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse(line)
    assert caught.value.code == code
    assert caught.value.fatal is fatal


def test_language_is_checked_once_the_bodies_are_in() -> None:
    header = parse("RUN cobol 3 0")
    assert isinstance(header, proto.RunHeader)
    with pytest.raises(RemoteProtocolError) as caught:
        proto.complete_run(header, b"abc", b"")
    assert caught.value.code == proto.BAD_LANGUAGE and not caught.value.fatal
    assert proto.complete_run(proto.RunHeader("Java", 1, 1), b"x", b"y") == proto.Run(
        Language.JAVA, b"x", b"y"
    )


@given(st.text(max_size=200))
def test_any_line_parses_or_raises_a_protocol_error(line: str) -> None:
    try:
        parse(line)
    except ProtocolError:
        pass


results = st.builds(
    ExecResult,
    verdict=st.sampled_from(Verdict),
    exit_code=st.none() | st.integers(-255, 255),
    compile_ms=st.none() | st.integers(0, 10**7),
    run_ms=st.none() | st.integers(0, 10**7),
    diag=st.binary(max_size=20),
    stdout=st.binary(max_size=20),
    stderr=st.binary(max_size=20),
    stdout_truncated=st.booleans(),
    stderr_truncated=st.booleans(),
    diag_truncated=st.booleans(),
)


@given(result=results, run_id=st.none() | st.integers(0, proto.MAX_ID))
def test_result_line_round_trips(result: ExecResult, run_id: int | None) -> None:
    header = proto.parse_result(proto.format_result(run_id, result))
    assert header == proto.ResultHeader(
        run_id, result.verdict, result.exit_code, result.compile_ms, result.run_ms,
        result.truncated, len(result.diag), len(result.stdout), len(result.stderr),
    )  # fmt: skip


entries = st.builds(
    proto.Entry,
    run_id=st.integers(0, proto.MAX_ID),
    at_ms=st.integers(0, 2**45),
    user=st.sampled_from(["alice", "Bob_2", "élodie"]),
    language=st.sampled_from(Language),
    verdict=st.sampled_from(Verdict),
    exit_code=st.none() | st.integers(-255, 255),
    compile_ms=st.none() | st.integers(0, 10**7),
    run_ms=st.none() | st.integers(0, 10**7),
    truncated=st.sampled_from(
        [(), ("stdout",), ("diag", "stderr"), ("stdin",), ("stdout", "stdin")]
    ),
    code_bytes=st.integers(0, 65536),
    diag_bytes=st.integers(0, 65536),
    stdout_bytes=st.integers(0, 65536),
    stderr_bytes=st.integers(0, 65536),
    stdin_bytes=st.integers(0, 1 << 20),
)


@given(entries)
def test_entry_line_round_trips(entry: proto.Entry) -> None:
    assert proto.parse_entry(proto.format_entry(entry)) == entry


def test_an_entry_announces_its_stdin_last() -> None:
    line = "ENTRY 7 1700000000000 bob python OK 0 - 61 stdout,stdin 43 0 6 0 65536"
    entry = proto.parse_entry(line)
    assert (entry.code_bytes, entry.stdout_bytes, entry.stdin_bytes) == (43, 6, 65536)
    assert entry.truncated == ("stdout", "stdin")
    assert proto.format_entry(entry) == line


@pytest.mark.parametrize(
    "line",
    [
        # The pre-stdin form (13 fields) and one field too many.
        "ENTRY 7 1700000000000 bob python OK 0 - 61 - 43 0 6 0",
        "ENTRY 7 1700000000000 bob python OK 0 - 61 - 43 0 6 0 5 5",
        "ENTRY 7 1700000000000 bob python OK 0 - 61 - 43 0 6 0 x",
        "ENTRY 7 1700000000000 bob python OK 0 - 61 - 43 0 6 0 -1",
        "ENTRY 7 1700000000000 bob python OK 0 - 61 - 43 0 6 0 1048577",
        "ENTRY 7 1700000000000 bob python OK 0 - 61 - 43 0 6 0 9999999999999",
        "ENTRY 7 1700000000000 bob python OK 0 - 61 stdin,stdin 43 0 6 0 5",
        "ENTRY 7 1700000000000 bob python OK 0 - 61 code 43 0 6 0 5",
        "ENTRY 7 1700000000000 bob cobol OK 0 - 61 - 43 0 6 0 5",
        "ENTRY 7 1700000000000 <b> python OK 0 - 61 - 43 0 6 0 5",
    ],
)
def test_malformed_entries_are_refused(line: str) -> None:
    with pytest.raises(RemoteProtocolError):
        proto.parse_entry(line, max_body_bytes=1 << 20)


def test_a_result_never_names_stdin_truncated() -> None:
    with pytest.raises(RemoteProtocolError):
        proto.parse_result("RESULT 1 OK 0 - 5 stdin 0 0 0")


@given(st.text(max_size=200))
def test_any_reply_line_parses_or_raises_a_remote_protocol_error(line: str) -> None:
    for parse_reply in (proto.parse_entry, proto.parse_result):
        try:
            parse_reply(line)
        except RemoteProtocolError:
            pass


@given(entries)
def test_any_mangled_entry_parses_or_raises_a_remote_protocol_error(entry: proto.Entry) -> None:
    words = proto.format_entry(entry).split(" ")
    for index in range(len(words)):
        for replacement in ("", "-", "x", "-1", "9" * 30, "é"):
            mangled = " ".join([*words[:index], replacement, *words[index + 1 :]])
            try:
                proto.parse_entry(mangled)
            except RemoteProtocolError:
                pass


@pytest.mark.parametrize(
    "line",
    [
        "RESULT 1 OK 0 - 5 - 0 0",
        "RESULT 1 FINE 0 - 5 - 0 0 0",
        "RESULT 1 OK 0 - 5 bogus 0 0 0",
        "RESULT 1 OK 0 - 5 stdout,stdout 0 0 0",
        "RESULT 1 OK 0 - 5 - 0 0 99999999999999",
        "RESULT x OK 0 - 5 - 0 0 0",
        "RESULT 1 OK -- - 5 - 0 0 0",
        "ERR BUSY full",
    ],
)
def test_malformed_results_are_refused(line: str) -> None:
    with pytest.raises(RemoteProtocolError):
        proto.parse_result(line)


def test_a_listing_count_is_bounded() -> None:
    assert proto.parse_count("HISTORY 3", "HISTORY") == 3
    with pytest.raises(RemoteProtocolError):
        proto.parse_count("HISTORY 10001", "HISTORY")


def test_langs_lists_every_language() -> None:
    assert proto.format_langs() == "LANGS python c cpp java"
