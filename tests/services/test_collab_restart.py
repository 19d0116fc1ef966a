"""Acknowledged edits survive a restart: a clean one in-process (with and without
compaction) and ``kill -9`` of a real ``syncrox-trio run`` process."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from syncrox.config import Config
from syncrox.protocol.collab_doc import TEMPLATES, template_update
from tests.conftest import IO_TIMEOUT_S
from tests.e2e.process import running_server
from tests.services.collab_helpers import (
    collab_server,
    create_room,
    edit,
    running_client,
    wait_for_text,
    with_collab,
)

EDITS = 12


def appending(line: str) -> Callable[[str], str]:
    return lambda text: text + line


async def make_edits(port: int, code: str, language: str, count: int = EDITS) -> str:
    """``count`` edits by two clients, each acknowledged; return the resulting text."""
    async with (
        running_client(port, "ann", code, language) as ann,
        running_client(port, "bob", code, language) as bob,
    ):
        for n in range(count):
            writer, other = (ann, bob) if n % 2 == 0 else (bob, ann)
            after = await edit(writer, appending(f"// edit {n} by {writer.user}\n"))
            await wait_for_text(other, after)
        # A burst of unflushed edits, then one flush that covers them all.
        for n in range(5):
            ann.edit(ann.view().replace(f"edit {n} ", f"edit {n}! "))
        await ann.flush()
        return ann.text


async def read_text(port: int, code: str, language: str) -> str:
    async with running_client(port, "cat", code, language) as cat:
        return cat.view()


def assert_all_edits(text: str, language: str) -> None:
    assert text.startswith(TEMPLATES[language])
    for n in range(EDITS):
        mark = "!" if n < 5 else ""
        assert f"// edit {n}{mark} by {'ann' if n % 2 == 0 else 'bob'}\n" in text


@pytest.mark.parametrize("compact_every_updates", [500, 3])
async def test_acknowledged_edits_survive_a_restart(
    config: Config, compact_every_updates: int
) -> None:
    config = with_collab(config, compact_every_updates=compact_every_updates)
    expected: dict[str, str] = {}
    with trio.fail_after(IO_TIMEOUT_S):
        async with collab_server(config) as server:
            code, _ = await server.create_room()
            for language in ("python", "java"):
                expected[language] = await make_edits(server.port, code, language)
                assert_all_edits(expected[language], language)
        async with collab_server(config) as server:
            for language, text in expected.items():
                assert await read_text(server.port, code, language) == text
            stored = await server.ctx.store.collab.open_document(
                code, "python", template_update("python"), 0.0
            )
            assert not stored.created and stored.last_seq >= EDITS
            if compact_every_updates < EDITS:
                # Folded into a snapshot (the last fold may have been cut short by the stop).
                assert len(stored.updates) <= compact_every_updates
                assert stored.snapshot != template_update("python")
            else:
                assert len(stored.updates) == stored.last_seq  # the whole log, no snapshot
            assert await server.stored_text(code, "python") == expected["python"]


@pytest.mark.slow
def test_acknowledged_edits_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    async def before_kill(ports: dict[str, int]) -> tuple[str, str]:
        with trio.fail_after(IO_TIMEOUT_S):
            code, _ = await create_room(ports["rooms"])
            return code, await make_edits(ports["collab"], code, "cpp")

    async def after_restart(ports: dict[str, int], code: str) -> str:
        with trio.fail_after(IO_TIMEOUT_S):
            return await read_text(ports["collab"], code, "cpp")

    with running_server(data_dir) as (process, ports):
        code, expected = trio.run(before_kill, ports)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
    assert_all_edits(expected, "cpp")
    with running_server(data_dir) as (_, ports):
        assert trio.run(after_restart, ports, code) == expected
