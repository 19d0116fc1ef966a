"""The exec client library: a past run's detail (``SHOW``) with the stdin the room's history
kept, against the real service (its sandbox stood in for: every job echoes its stdin), and
a server whose replies cannot be trusted."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from syncrox.client.exec import ExecClient
from syncrox.errors import RemoteProtocolError, RequestRefused
from syncrox.sandbox.model import Language, Verdict
from syncrox.services.context import BoundPorts
from tests.conftest import IO_TIMEOUT_S
from tests.services.exec_helpers import NO_ENGINE, create_room, echo_sandbox, exec_config, running

KEPT = 16


@pytest.fixture
async def ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BoundPorts]:
    echo_sandbox(monkeypatch)
    config = exec_config(
        tmp_path / "data", docker_host=NO_ENGINE, exec_overrides={"history_stdin_bytes": KEPT}
    )
    async with running(config) as bound:
        yield bound


async def test_show_returns_the_stdin_the_history_kept(ports: BoundPorts) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        code, _ = await create_room(ports)
        async with ExecClient.connect("127.0.0.1", ports["exec"]) as client:
            await client.hello("bob", code)
            short = await client.run(Language.PYTHON, b"print(input())", b"Bob\n")
            long = await client.run("python", b"print(input())", bytes(range(40)))
            bare = await client.run("python", b"print(1)")
            assert short.verdict is long.verdict is bare.verdict is Verdict.OK
            run_ids = [r.header.run_id for r in (short, long, bare)]
            assert None not in run_ids
            entries = await client.history()
            assert [e.run_id for e in entries] == run_ids[::-1]
            assert [e.stdin_bytes for e in entries] == [0, KEPT, 4]
            assert [e.truncated for e in entries] == [(), ("stdin",), ()]

            shown = await client.show(run_ids[0] or 0)
            assert (shown.code, shown.stdout, shown.stdin) == (
                b"print(input())",
                b"Bob\n",
                b"Bob\n",
            )
            shown = await client.show(run_ids[1] or 0)
            assert shown.stdin == bytes(range(KEPT)) and shown.stdout == bytes(range(40))
            assert "stdin" in shown.entry.truncated
            shown = await client.show(run_ids[2] or 0)
            assert shown.stdin == b"" and shown.entry.stdin_bytes == 0
            await client.ping()  # every body was read: the connection is still in step

        other, _ = await create_room(ports, "carol")
        async with ExecClient.connect("127.0.0.1", ports["exec"]) as client:
            await client.hello("dan", other)
            assert await client.history() == []
            with pytest.raises(RequestRefused) as caught:
                await client.show(run_ids[0] or 0)
            assert caught.value.code == "NOT_FOUND"


@pytest.mark.parametrize(
    "reply",
    [
        # The form before the stdin was kept: one size short.
        b"ENTRY 1 1700000000000 bob python OK 0 - 5 - 8 0 2 0\n",
        b"ENTRY 1 1700000000000 bob python OK 0 - 5 - 8 0 2 0 99999999999\n",
        b"ENTRY 1 1700000000000 bob python OK 0 - 5 code 8 0 2 0 1\n",
    ],
)
async def test_a_malformed_show_reply_is_a_remote_protocol_error(reply: bytes) -> None:
    async def server(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some()
            await stream.send_all(reply)
            await stream.receive_some()

    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, server, 0, host="127.0.0.1")
            (listener,) = await nursery.start(serve)
            port = listener.socket.getsockname()[1]
            async with ExecClient.connect("127.0.0.1", port) as client:
                with pytest.raises(RemoteProtocolError):
                    await client.show(1)
            nursery.cancel_scope.cancel()
