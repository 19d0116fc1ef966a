"""The sandbox runner against a real Docker engine: languages, phases, pool, cleanup."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from syncrox.sandbox.engine import Engine
from syncrox.sandbox.model import Job, Language, Verdict
from syncrox.sandbox.runner import Sandbox, open_sandbox
from tests.sandbox.engine_env import our_containers, sandbox_config
from tests.sandbox.programs import COMPILE_ERRORS, HELLO

pytestmark = pytest.mark.docker

JOB_TIMEOUT_S = 90.0  # Java compile plus run on a loaded machine, with room to spare


@pytest.mark.parametrize("language", list(Language), ids=lambda lang: lang.value)
async def test_hello_world_reads_stdin(sandbox: Sandbox, language: Language) -> None:
    with trio.fail_after(JOB_TIMEOUT_S):
        result = await sandbox.run(Job(language, HELLO[language], b"world\n"))
    assert result.verdict is Verdict.OK, result
    assert result.stdout == b"hello world\n"
    assert result.exit_code == 0 and result.run_ms is not None
    assert (result.compile_ms is None) == (language is Language.PYTHON)


@pytest.mark.parametrize("language", list(COMPILE_ERRORS), ids=lambda lang: lang.value)
async def test_compile_error_carries_the_compilers_message(
    sandbox: Sandbox, language: Language
) -> None:
    code, message = COMPILE_ERRORS[language]
    with trio.fail_after(JOB_TIMEOUT_S):
        result = await sandbox.run(Job(language, code))
    assert result.verdict is Verdict.COMPILE_ERROR, result
    assert message in result.diag and b"error" in result.diag
    assert result.exit_code not in (None, 0)
    assert result.compile_ms is not None and result.run_ms is None
    assert result.stdout == b"" == result.stderr


async def test_runtime_error_reports_the_exit_status_and_stderr(sandbox: Sandbox) -> None:
    code = b"import sys\nprint('partial')\nsys.exit('fatal: boom')\n"
    with trio.fail_after(JOB_TIMEOUT_S):
        result = await sandbox.run(Job(Language.PYTHON, code))
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert result.exit_code == 1
    assert result.stdout == b"partial\n" and result.stderr == b"fatal: boom\n"


async def test_a_c_crash_is_a_runtime_error_with_the_signal(sandbox: Sandbox) -> None:
    code = b"int main(void) { volatile int *p = 0; return *p; }\n"
    with trio.fail_after(JOB_TIMEOUT_S):
        result = await sandbox.run(Job(Language.C, code))
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert result.exit_code == 128 + 11 and b"signal 11" in result.diag


async def test_warnings_of_a_successful_compile_reach_diag(sandbox: Sandbox) -> None:
    code = b'#include <stdio.h>\nint main(void) { int unused; puts("ok"); return 0; }\n'
    with trio.fail_after(JOB_TIMEOUT_S):
        result = await sandbox.run(Job(Language.C, code))
    assert result.verdict is Verdict.OK and result.stdout == b"ok\n"
    assert b"unused" in result.diag


async def test_binary_stdout_and_empty_code_are_fine(sandbox: Sandbox) -> None:
    code = b"import sys\nsys.stdout.buffer.write(bytes(range(256)))\n"
    with trio.fail_after(JOB_TIMEOUT_S):
        binary = await sandbox.run(Job(Language.PYTHON, code))
        empty = await sandbox.run(Job(Language.PYTHON, b""))
    assert binary.stdout == bytes(range(256))
    assert empty.verdict is Verdict.OK and empty.stdout == b""


async def test_a_cancelled_job_leaves_no_container(sandbox: Sandbox, engine: Engine) -> None:
    with trio.move_on_after(1.5) as scope:
        await sandbox.run(Job(Language.PYTHON, b"while True: pass\n"))
    assert scope.cancelled_caught
    assert sandbox.live_containers() == []
    assert our_containers(engine) == []


async def test_jobs_run_concurrently_each_in_its_own_container(sandbox: Sandbox) -> None:
    code = b"import os, sys\nopen('/sandbox/mine', 'w').write(sys.stdin.read())\n"
    code += b"print(open('/sandbox/mine').read(), os.listdir('/sandbox'))\n"
    results: dict[int, bytes] = {}

    async def one(index: int) -> None:
        result = await sandbox.run(Job(Language.PYTHON, code, str(index).encode()))
        results[index] = result.stdout

    with trio.fail_after(JOB_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            for index in range(4):
                nursery.start_soon(one, index)
    for index, stdout in results.items():
        assert stdout.startswith(f"{index} ".encode()), stdout
        assert b"'mine'" in stdout


async def pooled_sandbox_ready(sandbox: Sandbox, size: int) -> None:
    sandbox.warm_up()
    await sandbox.pool.wait_ready(size)


async def until(condition: Callable[[], bool], *, poll_s: float = 0.05) -> None:
    """Poll ``condition`` (the caller bounds the wait with its own fail_after)."""
    for _ in range(100_000):
        if condition():
            return
        await trio.sleep(poll_s)


async def test_pool_containers_serve_one_job_each_and_are_refilled(engine: Engine) -> None:
    # The first job leaves a file and a background process behind; the next job must see
    # neither: it runs in a different, fresh container.
    dirty = b"import subprocess\nopen('/sandbox/left', 'w').write('x')\n"
    dirty += b"subprocess.Popen(['sleep', '60'])\nprint('dirtied')\n"
    probe = b"import os\nprint(sorted(os.listdir('/sandbox')))\n"
    probe += b"print([p for p in os.listdir('/proc') if p.isdigit()].__len__())\n"
    config = sandbox_config(pool_size=2)
    async with open_sandbox(config) as sandbox:
        with trio.fail_after(JOB_TIMEOUT_S):
            await pooled_sandbox_ready(sandbox, 2)
            pooled = set(sandbox.live_containers())
            first = await sandbox.run(Job(Language.PYTHON, dirty))
            second = await sandbox.run(Job(Language.PYTHON, probe))
            assert first.stdout == b"dirtied\n"
            listing, processes = second.stdout.decode().splitlines()
            assert "left" not in listing
            # tini, sleep (main), bash (driver), two heads, python: nothing from job one.
            assert int(processes) <= 6
            await pooled_sandbox_ready(sandbox, 2)
            # Both jobs used pooled containers, which are gone; two new ones wait.
            await until(lambda: not set(sandbox.live_containers()) & pooled)
            assert len(sandbox.live_containers()) == 2
    assert our_containers(engine) == []


async def test_a_missing_image_is_sandbox_unavailable(engine: Engine) -> None:
    config = sandbox_config(image="syncrox-sandbox:does-not-exist")
    async with open_sandbox(config) as sandbox:
        with trio.fail_after(JOB_TIMEOUT_S):
            result = await sandbox.run(Job(Language.PYTHON, b"print(1)"))
    assert result.verdict is Verdict.SANDBOX_UNAVAILABLE
    assert b"sandbox build" in result.diag
