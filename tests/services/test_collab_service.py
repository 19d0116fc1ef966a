"""The collab service with real clients over loopback: admission, convergence, room and
language isolation, awareness, acknowledgements, and bad input that must not hurt it."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import AsyncIterator

import pytest
import trio

from syncrox.client.collab import CollabClient, tcp_connector
from syncrox.config import Config
from syncrox.errors import LocalProtocolError, RequestRefused
from syncrox.protocol import collab as proto
from syncrox.protocol.collab_doc import TEMPLATES
from tests.conftest import IO_TIMEOUT_S
from tests.services.collab_helpers import (
    HOST,
    CollabServer,
    Writer,
    assert_edits_travel,
    awareness_message,
    collab_server,
    edit,
    update_message,
    wait_for_text,
    wait_until,
    with_collab,
    with_rooms,
)

PYTHON = TEMPLATES["python"]


@pytest.fixture
async def server(config: Config) -> AsyncIterator[CollabServer]:
    # Admission tests make many failed attempts from one address on purpose.
    async with collab_server(with_rooms(config, join_failure_burst=1000)) as running:
        yield running


def error_code(line: str) -> str:
    assert line.startswith("ERR "), line
    return line.split(" ")[1]


# ---------------------------------------------------------------------------------------
# Admission


async def test_admission_is_checked_before_anything_else(server: CollabServer) -> None:
    code, zed_token = await server.create_room("zed")
    amy_token = await server.join_room(code, "amy")
    other = "1000" if code != "1000" else "1001"
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as raw:
            assert error_code(await raw.ask("OPEN python")) == "NOT_MEMBER"
            await raw.send(b"YMSG 1\n\x03")  # its body is read as a body, then refused
            assert error_code(await raw.next_line()) == "NOT_MEMBER"
            assert await raw.ask("LANGS") == "LANGS python c cpp java"
            for line, expected in [
                (f"HELLO bad/name {code}", "BAD_USER"),
                ("HELLO amy 12x4", "BAD_ROOM"),
                (f"HELLO amy {code} short", "BAD_TOKEN"),
                ("AUTH " + "A" * 20, "BAD_TOKEN"),
                (f"HELLO amy {other}", "NOT_FOUND"),  # a wrong room code
                (f"HELLO zed {code}", "NAME_TAKEN"),  # reserved by the creator's token
                (f"HELLO ZED {code}", "NAME_TAKEN"),  # case-insensitively
                (f"HELLO zed {code} {amy_token}", "BAD_TOKEN"),  # amy's token, not zed's
            ]:
                assert error_code(await raw.ask(line)) == expected, line
            assert error_code(await raw.ask("OPEN python")) == "NOT_MEMBER"
            assert await raw.ask(f"HELLO zed {code} {zed_token}") == f"OK HELLO {code} zed"
            await raw.send(b"YMSG 1\n\x03")  # admitted, but no document open
            assert error_code(await raw.next_line()) == proto.NOT_OPEN
            assert error_code(await raw.ask(f"HELLO zed {other}")) == "NOT_FOUND"
            assert (await raw.ask("OPEN py")).startswith("OPENED python ")
            assert await raw.text() == PYTHON
        async with server.raw() as raw:
            assert await raw.ask(f"AUTH {amy_token}") == f"OK HELLO {code} amy"
            assert (await raw.ask("OPEN c")).startswith("OPENED c ")
            assert await raw.text() == TEMPLATES["c"]


async def test_a_connection_cannot_switch_rooms(server: CollabServer) -> None:
    code_a, _ = await server.create_room()
    code_b, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as raw:
            assert await raw.ask(f"HELLO ann {code_a}") == f"OK HELLO {code_a} ann"
            assert error_code(await raw.ask(f"HELLO ann {code_b}")) == "NOT_MEMBER"
            assert (await raw.ask("OPEN java")).startswith("OPENED java ")
            assert error_code(await raw.ask("OPEN c")) == "BAD_ARGUMENT"  # one per connection


async def test_the_client_library_reports_refused_admission(server: CollabServer) -> None:
    code, zed_token = await server.create_room("zed")
    other = "1000" if code != "1000" else "1001"
    connect = tcp_connector(HOST, server.port)
    with trio.fail_after(IO_TIMEOUT_S):
        for client, expected in [
            (CollabClient(connect, language="c", room=other, user="amy"), "NOT_FOUND"),
            (CollabClient(connect, language="c", room=code, user="zed"), "NAME_TAKEN"),
        ]:
            with pytest.raises(RequestRefused) as info:
                await client.run()
            assert info.value.code == expected
        by_token = CollabClient(connect, language="c", token=zed_token)
        async with trio.open_nursery() as nursery:
            await nursery.start(by_token.run)
            assert (by_token.room, by_token.user) == (code, "zed")
            assert by_token.text == TEMPLATES["c"]
            nursery.cancel_scope.cancel()


async def test_a_stalled_or_misbehaving_connection_does_not_block_others(
    server: CollabServer,
) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as stalled, server.raw() as noisy:
            await stalled.enter("slow", code)
            await stalled.send(b"YMSG 1000\n" + b"\x00" * 10)  # and never the rest
            await noisy.send(b"HELLO\nFROB\n")
            assert error_code(await noisy.next_line()) == "BAD_ARGUMENT"
            text = await assert_edits_travel(server, code)
            assert text.endswith(PYTHON)
            assert error_code(await noisy.next_line()) == "BAD_COMMAND"


# ---------------------------------------------------------------------------------------
# Editing together


async def test_edits_of_one_client_appear_at_the_other(server: CollabServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann, server.client("bob", code) as bob:
            assert ann.text == bob.text == PYTHON
            after = await edit(ann, lambda text: text.replace("Hello from SyncroX!", "Hi é😀"))
            await wait_for_text(bob, after)
            assert 'print("Hi é😀")' in bob.view()
            after = await edit(bob, lambda text: text.replace("def main", "def start"))
            await wait_for_text(ann, after)
            assert "def start() -> None:" in ann.view() and "Hi é😀" in ann.text


async def test_concurrent_edits_at_different_places_both_survive(server: CollabServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann, server.client("bob", code) as bob:
            shown_a, shown_b = ann.view(), bob.view()
            # Neither has seen the other's edit when making its own.
            ann.edit("# ann was here\n" + shown_a.replace("None", "int"))
            bob.edit(shown_b.replace("SyncroX", "Bob") + "# bob too\n")
            await ann.flush()
            await bob.flush()
            expected = (
                "# ann was here\n" + PYTHON.replace("None", "int").replace("SyncroX", "Bob")
            ) + "# bob too\n"
            await wait_for_text(ann, expected)
            await wait_for_text(bob, expected)
            assert ann.view() == bob.view() == expected
            assert await server.stored_text(code) == expected


@pytest.mark.parametrize("language", proto.LANGUAGES)
async def test_a_new_document_starts_with_its_template(server: CollabServer, language: str) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code, language) as ann:
            assert ann.view() == TEMPLATES[language]
        # Created once: a second opener gets the template once, not twice.
        async with server.client("bob", code, language) as bob:
            assert bob.text == TEMPLATES[language]


async def test_rooms_and_languages_are_separate_documents(server: CollabServer) -> None:
    code_a, _ = await server.create_room()
    code_b, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with (
            server.client("ann", code_a) as ann,
            server.client("amy", code_a) as amy,
            server.client("bob", code_b) as bob,
            server.raw() as watcher,
        ):
            await watcher.enter("wat", code_a)
            await wait_until(ann, lambda c: c.members() == ["amy"])
            bob.set_cursor(4, 9)
            secret = await edit(bob, lambda text: "# secret of room B\n" + text)
            await ann.sync()
            await amy.sync()
            assert ann.text == amy.text == PYTHON
            assert ann.members() == ["amy"] and amy.members() == ["ann"]
            assert await watcher.text() == PYTHON
            members = sorted(state["member"] for state in (await watcher.awareness()).values())
            assert members == ["amy", "ann"]
            seen = repr(watcher.received)
            assert "secret" not in seen and "bob" not in seen
            # Same room, other language: another document.
            await edit(ann, lambda text: text + "# python only\n")
            async with server.client("cal", code_a, "c") as cal:
                assert cal.text == TEMPLATES["c"] and cal.members() == []
            assert await server.stored_text(code_a, "c") == TEMPLATES["c"]
            assert await server.stored_text(code_b) == secret
            assert bob.members() == []


# ---------------------------------------------------------------------------------------
# Awareness


def peer_named(client: CollabClient, name: str) -> dict[str, object] | None:
    for state in client.replica.peers.values():
        if state.get("member") == name:
            return state
    return None


async def test_cursors_typing_and_departures_are_relayed(server: CollabServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with (
            server.client("ann", code, typing_idle_s=0.3) as ann,
            server.client("bob", code) as bob,
        ):
            await wait_until(bob, lambda c: c.members() == ["ann"])
            await wait_until(ann, lambda c: c.members() == ["bob"])
            ann.set_cursor(3, 7)
            await wait_until(
                bob,
                lambda c: (peer_named(c, "ann") or {}).get("cursor") == {"anchor": 3, "head": 7},
            )
            typing: list[object] = []
            bob.add_listener(lambda: typing.append((peer_named(bob, "ann") or {}).get("typing")))
            await edit(ann, lambda text: text + "#")
            # "typing" is relayed, and cleared once ann has been idle for a while.
            await wait_until(bob, lambda _: True in typing and typing[-1] is False)
            assert typing.index(True) < len(typing) - 1
            async with server.client("cat", code) as cat:
                await wait_until(ann, lambda c: c.members() == ["bob", "cat"])
                assert sorted(cat.members()) == ["ann", "bob"]
            await wait_until(ann, lambda c: c.members() == ["bob"])
            assert bob.members() == ["ann"]


async def test_a_peer_cannot_claim_another_name_or_client_id(server: CollabServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann, server.raw() as raw:
            await raw.enter("mal", code)
            await raw.send_frame(awareness_message(41, 1, '{"member":"ann","cursor":null}'))
            await wait_until(ann, lambda c: c.members() == ["mal"])
            await raw.send_frame(awareness_message(ann.replica.client_id, 99, '{"x":1}'))
            assert error_code(await raw.next_line()) == proto.BAD_AWARENESS
            states = await raw.awareness()
            assert states[41]["member"] == "mal"
            assert states[ann.replica.client_id]["member"] == "ann"
            assert "x" not in states[ann.replica.client_id]


async def test_silent_awareness_states_expire(config: Config) -> None:
    timeout_s = 1.0
    async with collab_server(with_collab(config, awareness_timeout_s=timeout_s)) as server:
        code, _ = await server.create_room()
        with trio.fail_after(IO_TIMEOUT_S):
            async with (
                server.client("ann", code, awareness_renew_s=0.1) as ann,
                server.raw() as ghost,
            ):
                await ghost.enter("ghost", code)
                sent = trio.current_time()  # the server's clock too: one trio.run
                await ghost.send_frame(awareness_message(7, 1, '{"cursor":null}'))
                await wait_until(ann, lambda c: c.members() == ["ghost"])
                await wait_until(ann, lambda c: c.members() == [])
                assert trio.current_time() - sent >= timeout_s
                # The ghost is still connected; ann, who renews, has not expired.
                states = await ghost.awareness()
                assert [state["member"] for state in states.values()] == ["ann"]
                assert await ghost.ask("PING") == "PONG"


# ---------------------------------------------------------------------------------------
# Bad input


BAD_LINES = [
    (b"\x00\x01garbage!!\n", "BAD_COMMAND"),
    (b"FROB 1234\n", "BAD_COMMAND"),
    (b"HELLO alice\n", "BAD_ARGUMENT"),
    (b"OPEN cobol\n", proto.BAD_LANGUAGE),
    (b"\xff\xfe\xfd\n", "BAD_UTF8"),
    (b"PING " + b"x" * 5000 + b"\n", "LINE_TOO_LONG"),
]


@pytest.mark.parametrize(("request_bytes", "expected"), BAD_LINES)
async def test_bad_lines_are_answered_and_the_connection_goes_on(
    server: CollabServer, request_bytes: bytes, expected: str
) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as raw:
            await raw.enter("ann", code)
            await raw.send(request_bytes)
            assert error_code(await raw.next_line()) == expected
            assert await raw.ask("PING") == "PONG"
            assert await raw.text() == PYTHON
        assert (await assert_edits_travel(server, code)).endswith(PYTHON)


@pytest.mark.parametrize(
    ("header", "expected"), [(b"YMSG 99999999\n", "TOO_LARGE"), (b"YMSG -1\n", "BAD_ARGUMENT")]
)
async def test_a_frame_of_untrusted_size_closes_the_connection(
    server: CollabServer, header: bytes, expected: str
) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as raw:
            await raw.enter("ann", code)
            await raw.send(header + b"\x00\x00\x01\x00")
            assert error_code(await raw.next_line()) == expected
            assert await raw.closed()
        assert (await assert_edits_travel(server, code)).endswith(PYTHON)


def synced_writer(document: bytes, client_id: int = 4242) -> Writer:
    """A replica of ``document`` that records its own edits as updates."""
    writer = Writer(client_id)
    writer.apply(document)
    return writer


async def test_a_malformed_frame_is_refused_whole(server: CollabServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as raw:
            await raw.enter("ann", code)
            writer = synced_writer(await raw.document())  # frame 1
            update = update_message(writer.insert(0, "# good\n"))
            await raw.send_frame(update, b"\x07")  # frame 2: a good update, then junk
            assert error_code(await raw.next_line()) == proto.BAD_MESSAGE
            await raw.send_frame(update[:-2])  # frame 3: truncated
            assert error_code(await raw.next_line()) == proto.BAD_MESSAGE
            assert await raw.text() == PYTHON  # frame 4
            assert await server.stored_text(code) == PYTHON
            await raw.send_frame(update)  # frame 5: the same update alone is fine
            assert await raw.next_line() == "ACK 5"
            assert await server.stored_text(code) == "# good\n" + PYTHON
        assert (await assert_edits_travel(server, code)).endswith("# good\n" + PYTHON)


@pytest.mark.parametrize("junk", [b"\x01\x02garbage", b"\x00", b"\x01\x01\x85\x01\x00"])
async def test_a_garbage_update_is_refused_and_hurts_nobody(
    server: CollabServer, junk: bytes
) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann, server.raw() as raw:
            await raw.enter("mal", code)
            await raw.send_frame(update_message(junk))
            assert error_code(await raw.next_line()) == proto.BAD_UPDATE
            assert await raw.next_line() == "ACK 1"
            assert await raw.text() == PYTHON
            after = await edit(ann, lambda text: text + "# still fine\n")
            assert await raw.text() == after
            assert ann.connections == 1 and ann.refusals == []
            assert await server.stored_text(code) == after
        assert (await assert_edits_travel(server, code)).endswith(after)


async def test_an_update_with_missing_dependencies_is_refused(server: CollabServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as raw:
            await raw.enter("ann", code)
            writer = synced_writer(await raw.document())  # frame 1
            first = writer.insert(0, "abc")
            second = writer.insert(3, "def")  # builds on the first
            await raw.send_frame(update_message(second))  # frame 2, without the first
            assert error_code(await raw.next_line()) == proto.BAD_UPDATE
            assert await raw.next_line() == "ACK 2"
            assert await raw.text() == PYTHON
            assert await server.stored_text(code) == PYTHON
            await raw.send_frame(update_message(first))  # frame 4
            assert await raw.next_line() == "ACK 4"
            assert await raw.text() == "abc" + PYTHON  # the refused one was not kept
            await raw.send_frame(update_message(second))  # frame 6: now it applies
            assert await raw.next_line() == "ACK 6"
            assert await server.stored_text(code) == "abcdef" + PYTHON
        assert (await assert_edits_travel(server, code)).endswith("abcdef" + PYTHON)


async def test_a_document_cannot_grow_beyond_its_limit(config: Config) -> None:
    limit = 1000
    async with collab_server(with_collab(config, max_document_bytes=limit)) as server:
        code, _ = await server.create_room()
        with trio.fail_after(IO_TIMEOUT_S):
            async with server.client("ann", code) as ann, server.raw() as raw:
                await raw.enter("mal", code)
                writer = synced_writer(await raw.document())  # frame 1
                await raw.send_frame(update_message(writer.insert(0, "x" * limit)))
                assert error_code(await raw.next_line()) == proto.DOC_TOO_LARGE
                assert await raw.next_line() == "ACK 2"
                assert await raw.text() == PYTHON
                assert await server.stored_text(code) == PYTHON
                with pytest.raises(LocalProtocolError) as info:
                    ann.edit(ann.view() + "y" * limit)  # the client refuses it itself
                assert info.value.code == proto.DOC_TOO_LARGE
                base = await assert_edits_travel(server, code)
                await wait_for_text(ann, base)
                fits = "z" * (limit - len(base.encode()))
                after = await edit(ann, lambda text: text + fits)
                assert len(after.encode()) == limit and after.startswith(base)
                assert await server.stored_text(code) == after
                fresh = synced_writer(await raw.document(), client_id=4343)
                await raw.send_frame(update_message(fresh.insert(0, "!")))
                assert error_code(await raw.next_line()) == proto.DOC_TOO_LARGE
                assert await server.stored_text(code) == after


# ---------------------------------------------------------------------------------------
# Acknowledgements


async def test_flush_returns_once_the_edit_is_stored(server: CollabServer) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.client("ann", code) as ann:
            for n in range(5):
                after = await edit(ann, f"# line {n}\n".__add__)  # prepend the line
                assert await server.stored_text(code) == after
            burst = ann.view()
            for n in range(20):
                burst = f"{n}," + burst
                ann.edit(burst)
            await ann.flush()
            assert await server.stored_text(code) == burst
        async with server.client("bob", code) as bob:
            assert bob.text == burst
            assert burst.startswith("19,18,") and burst.endswith("# line 0\n" + PYTHON)


async def test_a_reset_connection_is_logged_as_a_disconnect_not_a_crash(
    server: CollabServer, caplog: pytest.LogCaptureFixture
) -> None:
    code, _ = await server.create_room()
    with caplog.at_level(logging.INFO, logger="syncrox"), trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as raw:
            await raw.enter("ann", code)
            # Linger 0: close() sends a TCP RST, as a crashed or killed client does.
            linger_off = struct.pack("ii", 1, 0)
            raw.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_off)
            await raw.stream.aclose()
        # Log records have no event to wait on: poll them.
        while not any("collab.disconnect" in m for m in caplog.messages):  # noqa: ASYNC110
            await trio.sleep(0.01)
        await assert_edits_travel(server, code)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_member_reconnecting_before_its_old_connection_died_keeps_its_client_id(
    server: CollabServer,
) -> None:
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as old, server.raw() as new, server.raw() as watcher:
            for raw in (old, new, watcher):
                await raw.enter("ann" if raw is not watcher else "bob", code)
            await old.send_frame(awareness_message(55, 1, '{"typing":true}'))
            assert (await watcher.awareness())[55]["typing"] is True
            # The old connection is still open (its death not yet noticed) when the same
            # member comes back on a new one with the same client id.
            await new.send_frame(awareness_message(55, 2, '{"typing":false}'))
            assert (await watcher.awareness())[55]["typing"] is False
            assert not [r for r in new.received if isinstance(r, str) and r.startswith("ERR")]
            await old.stream.aclose()
            await assert_edits_travel(server, code)  # the old connection's end is processed
            assert (await watcher.awareness())[55] == {"typing": False, "member": "ann"}


async def test_a_crowded_awareness_update_costs_one_refusal(server: CollabServer) -> None:
    # One 2 MiB frame used to carry ~290 000 entries: a check, a log line and an ERR each.
    code, _ = await server.create_room()
    with trio.fail_after(IO_TIMEOUT_S):
        async with server.raw() as raw:
            await raw.enter("mal", code)
            crowd = tuple(proto.AwarenessEntry(n, 1, "{}") for n in range(1000, 1000 + 33))
            await raw.send_frame(proto.encode_message(proto.AwarenessUpdate(crowd)))
            line = await raw.next_line()
            assert error_code(line) == proto.BAD_MESSAGE and "at most 32 entries" in line
            # Others' ids within the bound: refused together, in one answer.
            others = tuple(proto.AwarenessEntry(n, 1, '{"member":"x"}') for n in range(5, 15))
            await raw.send_frame(awareness_message(5, 1, "{}"))
            await raw.send_frame(proto.encode_message(proto.AwarenessUpdate(others)))
            line = await raw.next_line()
            assert error_code(line) == proto.BAD_AWARENESS and "more)" in line, line
            assert (await raw.awareness())[5]["member"] == "mal"
