"""The exec service's protocol edge over real sockets, with no engine (the configured socket
does not exist): admission, framing, refusals, SANDBOX_UNAVAILABLE. Runs against a real
engine are in test_exec_docker.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from syncrox.config import TcpLimits
from syncrox.errors import BUSY, LocalProtocolError
from syncrox.services.context import BoundPorts
from syncrox.services.exec import RunQueue
from tests.services.exec_helpers import (
    NO_ENGINE,
    admitted,
    create_room,
    echo_sandbox,
    exec_config,
    read_result,
    read_shown,
    run_request,
    running,
)
from tests.services.helpers import raw_client


@pytest.fixture
async def ports(tmp_path: Path) -> AsyncIterator[BoundPorts]:
    async with running(exec_config(tmp_path / "data", docker_host=NO_ENGINE)) as bound:
        yield bound


async def test_langs_ping_bye_need_no_admission(ports: BoundPorts) -> None:
    with trio.fail_after(10):
        async with raw_client(ports["exec"]) as client:
            assert await client.ask("LANGS") == "LANGS python c cpp java"
            assert await client.ask("PING") == "PONG"
            assert await client.ask("BYE") == "OK BYE"
            assert await client.closed()


async def test_admission_by_code_and_by_token(ports: BoundPorts) -> None:
    with trio.fail_after(10):
        code, token = await create_room(ports)
        other = "1000" if code != "1000" else "1001"
        async with raw_client(ports["exec"]) as client:
            assert (await client.ask(f"HELLO bob {other}")).startswith("ERR NOT_FOUND")
            assert (await client.ask(f"HELLO alice {code}")).startswith("ERR NAME_TAKEN")
            assert await client.ask(f"AUTH {token}") == f"OK HELLO {code} alice"
        async with raw_client(ports["exec"]) as client:
            assert await client.ask(f"HELLO alice {code} {token}") == f"OK HELLO {code} alice"


async def test_run_before_hello_is_refused_after_its_bodies(ports: BoundPorts) -> None:
    with trio.fail_after(10):
        async with raw_client(ports["exec"]) as client:
            # The body looks like commands; it must be swallowed as data.
            await client.send(run_request("python", b"BYE\nPING\n", b"HISTORY\n"))
            reply = await client.line()
            assert reply is not None and reply.startswith("ERR NOT_MEMBER ")
            assert await client.ask("PING") == "PONG"


async def test_unknown_language_is_refused_after_its_bodies(ports: BoundPorts) -> None:
    with trio.fail_after(10):
        code, _ = await create_room(ports)
        async with admitted(ports, "bob", code) as client:
            await client.send(run_request("cobol", b"BYE\n", b"BYE\n"))
            reply = await client.line()
            assert reply is not None and reply.startswith("ERR BAD_LANGUAGE ")
            assert await client.ask("PING") == "PONG"


@pytest.mark.parametrize(
    ("request_line", "code"),
    [
        (b"RUN python 65537 0\n", "TOO_LARGE"),
        (b"RUN python 0 1048577\n", "TOO_LARGE"),
        (b"RUN python 12\n", "BAD_ARGUMENT"),
        (b"RUN python x 0\n", "BAD_ARGUMENT"),
    ],
)
async def test_a_run_whose_bodies_cannot_be_found_closes_the_connection(
    ports: BoundPorts, request_line: bytes, code: str
) -> None:
    with trio.fail_after(10):
        async with raw_client(ports["exec"]) as client:
            await client.send(request_line + b"PING\n")
            reply = await client.line()
            assert reply is not None and reply.startswith(f"ERR {code} ")
            assert await client.closed()


async def test_without_an_engine_a_run_is_sandbox_unavailable_and_not_recorded(
    ports: BoundPorts,
) -> None:
    with trio.fail_after(10):
        code, _ = await create_room(ports)
        async with admitted(ports, "bob", code) as client:
            await client.send(run_request("python", b"print(1)"))
            words, diag, stdout, stderr = await read_result(client)
            assert words[1:7] == ["-", "SANDBOX_UNAVAILABLE", "-", "-", "-", "-"]
            assert b"cannot reach the Docker engine" in diag
            assert stdout == b"" == stderr
            assert await client.ask("HISTORY") == "HISTORY 0"


async def test_history_and_show_need_admission_and_an_existing_run(ports: BoundPorts) -> None:
    with trio.fail_after(10):
        code, _ = await create_room(ports)
        async with raw_client(ports["exec"]) as client:
            assert (await client.ask("HISTORY")).startswith("ERR NOT_MEMBER ")
            assert await client.ask(f"HELLO bob {code}") == f"OK HELLO {code} bob"
            assert (await client.ask("SHOW 1")).startswith("ERR NOT_FOUND ")
            assert (await client.ask("SHOW x")).startswith("ERR BAD_ARGUMENT ")


async def test_show_sends_the_stdin_the_history_kept_and_only_to_its_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    echo_sandbox(monkeypatch)
    config = exec_config(
        tmp_path / "data", docker_host=NO_ENGINE, exec_overrides={"history_stdin_bytes": 8}
    )
    with trio.fail_after(10):
        async with running(config) as bound:
            code, _ = await create_room(bound)
            async with admitted(bound, "bob", code) as client:
                ids = []
                # A stdin that looks like commands, one beyond what history keeps, none.
                for stdin in (b"BYE\nPING\n", b"12345678", b""):
                    await client.send(run_request("python", b"print(input())", stdin))
                    words, _, stdout, _ = await read_result(client)
                    assert words[2] == "OK" and words[6] == "-" and stdout == stdin
                    ids.append(int(words[1]))
                history = await client.ask("HISTORY")
                entries = [await client.line() for _ in range(int(history.split(" ")[1]))]
                assert [e.split(" ")[9:] for e in entries if e] == [
                    ["-", "14", "0", "0", "0", "0"],
                    ["-", "14", "0", "8", "0", "8"],
                    ["stdin", "14", "0", "9", "0", "8"],
                ]
                await client.send(f"SHOW {ids[0]}\n".encode())
                words, bodies = await read_shown(client)
                assert len(words) == 15 and words[9] == "stdin"
                assert bodies == [b"print(input())", b"", b"BYE\nPING\n", b"", b"BYE\nPING"]
                await client.send(f"SHOW {ids[2]}\n".encode())
                words, bodies = await read_shown(client)
                assert words[9] == "-" and bodies[4] == b""
                assert await client.ask("PING") == "PONG"
            other, _ = await create_room(bound, "carol")
            async with admitted(bound, "dan", other) as client:
                assert await client.ask("HISTORY") == "HISTORY 0"
                for run_id in ids:
                    reply = await client.ask(f"SHOW {run_id}")
                    assert reply == f"ERR NOT_FOUND no run {run_id} in room {other}"
                assert await client.ask("PING") == "PONG"


async def test_a_stalled_body_times_out_and_closes(tmp_path: Path) -> None:
    tcp = TcpLimits(idle_timeout_s=0.5)
    config = exec_config(tmp_path / "data", tcp=tcp, docker_host=NO_ENGINE)
    with trio.fail_after(10):
        async with running(config) as bound, raw_client(bound["exec"]) as client:
            await client.send(b"RUN python 10 0\nabc")
            reply = await client.line()
            assert reply is not None and reply.startswith("ERR TIMEOUT ")
            assert await client.closed()


async def test_the_queue_admits_running_plus_waiting_then_says_busy() -> None:
    queue = RunQueue(running=1, waiting=1)
    release = trio.Event()
    entered: list[int] = []

    async def job(index: int) -> None:
        async with queue.slot():
            entered.append(index)
            await release.wait()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(job, 1)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(job, 2)
            await trio.testing.wait_all_tasks_blocked()
            assert (queue.running, queue.waiting, entered) == (1, 1, [1])
            with pytest.raises(LocalProtocolError) as caught:
                async with queue.slot():
                    pass
            assert caught.value.code == BUSY and "1 running, 1 waiting" in caught.value.message
            release.set()
        assert entered == [1, 2] and queue.running == 0 and queue.waiting == 0
