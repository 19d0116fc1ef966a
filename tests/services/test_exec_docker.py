"""The exec service against a real Docker engine: results, history, rooms, load, clients
that vanish, and shutdown; each test ends with no container of ours left."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from syncrox.client.exec import ExecClient
from syncrox.errors import RequestRefused
from syncrox.sandbox.engine import Engine
from syncrox.sandbox.model import Language, Verdict
from syncrox.services.context import BoundPorts
from tests.sandbox.engine_env import our_containers, usable_engine
from tests.sandbox.programs import HELLO, INFINITE_LOOP_PY
from tests.services.exec_helpers import (
    admitted,
    create_room,
    exec_config,
    read_result,
    run_request,
    running,
)

pytestmark = pytest.mark.docker

RUN_TIMEOUT_S = 60.0


@pytest.fixture
def engine() -> Iterator[Engine]:
    with usable_engine() as found:
        assert our_containers(found) == []
        yield found
        assert our_containers(found) == []


@pytest.fixture
async def ports(engine: Engine, tmp_path: Path) -> AsyncIterator[BoundPorts]:
    async with running(exec_config(tmp_path / "data", pool_size=1)) as bound:
        yield bound


async def test_run_history_and_show(ports: BoundPorts) -> None:
    with trio.fail_after(RUN_TIMEOUT_S):
        code, _ = await create_room(ports)
        async with ExecClient.connect("127.0.0.1", ports["exec"]) as client:
            await client.hello("bob", code)
            reply = await client.run("python", HELLO[Language.PYTHON], b"room\n")
            assert reply.verdict is Verdict.OK and reply.stdout == b"hello room\n"
            header = reply.header
            assert header.run_id is not None and header.compile_ms is None
            failed = await client.run(Language.C, b"int main(void) { return nope; }\n")
            assert failed.verdict is Verdict.COMPILE_ERROR and b"nope" in failed.diag
            entries = await client.history()
            assert [e.run_id for e in entries] == [failed.header.run_id, header.run_id]
            assert [e.verdict for e in entries] == [Verdict.COMPILE_ERROR, Verdict.OK]
            assert {e.user for e in entries} == {"bob"}
            shown = await client.show(header.run_id)
            assert shown.code == HELLO[Language.PYTHON] and shown.stdout == b"hello room\n"
            assert shown.stdin == b"room\n" and shown.entry.truncated == ()
            assert shown.entry.language is Language.PYTHON


async def test_rooms_see_only_their_own_runs(ports: BoundPorts) -> None:
    with trio.fail_after(RUN_TIMEOUT_S):
        room_a, _ = await create_room(ports, "alice")
        room_b, _ = await create_room(ports, "carol")
        async with ExecClient.connect("127.0.0.1", ports["exec"]) as a_client:
            await a_client.hello("ann", room_a)
            secret = await a_client.run("python", b"print('secret of A')")
        async with ExecClient.connect("127.0.0.1", ports["exec"]) as b_client:
            await b_client.hello("ben", room_b)
            assert await b_client.history() == []
            assert secret.header.run_id is not None
            with pytest.raises(RequestRefused) as caught:
                await b_client.show(secret.header.run_id)
            assert caught.value.code == "NOT_FOUND"


async def test_a_full_queue_answers_busy_and_keeps_the_connection(
    engine: Engine, tmp_path: Path
) -> None:
    config = exec_config(
        tmp_path / "data", exec_overrides={"max_concurrent_runs": 1, "max_queued_runs": 1}
    )
    async with running(config) as bound:
        code, _ = await create_room(bound)
        outcomes: list[str] = []

        async def submit(user: str) -> None:
            async with admitted(bound, user, code) as client:
                await client.send(run_request("python", INFINITE_LOOP_PY))
                line = await client.line()
                assert line is not None
                if line.startswith("RESULT "):
                    words = line.split(" ")
                    for size in words[7:10]:
                        await client.conn.receive_body(int(size))
                outcomes.append(line.split(" ")[2] if line.startswith("RESULT") else line)
                assert await client.ask("PING") == "PONG"

        with trio.fail_after(RUN_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                for user in ("u1", "u2", "u3"):
                    nursery.start_soon(submit, user)
                    await trio.sleep(0.2)
    busy = [o for o in outcomes if o.startswith("ERR BUSY ")]
    assert len(busy) == 1 and "1 running, 1 waiting" in busy[0]
    assert sorted(o for o in outcomes if not o.startswith("ERR")) == ["TIMEOUT", "TIMEOUT"]


async def test_a_client_that_disconnects_mid_run(ports: BoundPorts, engine: Engine) -> None:
    code, _ = await create_room(ports)
    with trio.fail_after(RUN_TIMEOUT_S):
        async with admitted(ports, "quitter", code) as client:
            await client.send(run_request("python", INFINITE_LOOP_PY))
            await trio.sleep(0.5)
        # Gone mid-run: the job still ends within its limit, its container is destroyed and
        # the result is in the room's history.
        async with admitted(ports, "watcher", code) as watcher:
            for _ in range(1000):
                listing = await watcher.ask("HISTORY")
                if listing == "HISTORY 1":
                    break
                await trio.sleep(0.1)
            entry = await watcher.line()
            assert entry is not None
            words = entry.split(" ")
            assert words[3:6] == ["quitter", "python", "TIMEOUT"]
            await watcher.send(run_request("python", b"print('still serving')"))
            words, _, stdout, _ = await read_result(watcher)
            assert words[2] == "OK" and stdout == b"still serving\n"


async def test_shutdown_mid_run_destroys_the_container(engine: Engine, tmp_path: Path) -> None:
    config = exec_config(tmp_path / "data", run_time_limit_s=60.0)
    with trio.fail_after(RUN_TIMEOUT_S):
        async with running(config) as bound:
            code, _ = await create_room(bound)
            async with admitted(bound, "bob", code) as client:
                await client.send(run_request("python", INFINITE_LOOP_PY))
                for _ in range(1000):
                    if our_containers(engine):
                        break
                    await trio.sleep(0.05)
                await trio.sleep(0.5)
                assert our_containers(engine)
        # The services' nursery was cancelled with the job running: nothing may remain.
    assert our_containers(engine) == []


async def test_twenty_concurrent_submissions_all_get_their_own_answer(
    engine: Engine, tmp_path: Path
) -> None:
    config = exec_config(tmp_path / "data", pool_size=2, exec_overrides={"max_queued_runs": 32})
    code = b"import sys\nprint('answer', int(sys.stdin.read()) * 2)\n"
    answers: dict[int, bytes] = {}
    async with running(config) as bound:
        room, _ = await create_room(bound)

        async def submit(index: int) -> None:
            async with ExecClient.connect("127.0.0.1", bound["exec"]) as client:
                await client.hello(f"user{index}", room)
                reply = await client.run("python", code, str(index).encode())
                assert reply.verdict is Verdict.OK, reply
                answers[index] = reply.stdout

        with trio.fail_after(RUN_TIMEOUT_S * 2):
            async with trio.open_nursery() as nursery:
                for index in range(20):
                    nursery.start_soon(submit, index)
    assert answers == {index: f"answer {index * 2}\n".encode() for index in range(20)}
