"""The attack suite against a real engine: every attack is contained, with the right verdict,
and the host stays healthy (a fresh hello world still runs promptly, nothing is left behind).

The last attack of the issue's list, a client that disconnects mid-run, needs the service:
tests/services/test_exec_docker.py.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest
import trio

from syncrox.sandbox.engine import Engine
from syncrox.sandbox.model import ExecResult, Job, Language, Verdict
from syncrox.sandbox.runner import Sandbox, open_sandbox
from tests.sandbox import programs
from tests.sandbox.engine_env import our_containers, sandbox_config

pytestmark = pytest.mark.docker

ATTACK_TIMEOUT_S = 90.0
HEALTHY_HELLO_S = 10.0  # a hello world right after an attack, including a cold container
CAP = 65536


async def attack(
    sandbox: Sandbox, language: Language, code: bytes, stdin: bytes = b""
) -> ExecResult:
    """Run the attack, then check the host is healthy: a hello world runs at once."""
    with trio.fail_after(ATTACK_TIMEOUT_S):
        result = await sandbox.run(Job(language, code, stdin))
    started = time.monotonic()
    with trio.fail_after(HEALTHY_HELLO_S):
        hello = await sandbox.run(Job(Language.PYTHON, programs.HELLO[Language.PYTHON], b"host\n"))
    assert hello.verdict is Verdict.OK and hello.stdout == b"hello host\n", hello
    assert time.monotonic() - started < HEALTHY_HELLO_S
    return result


def lines(result: ExecResult) -> list[str]:
    return result.stdout.decode().splitlines()


async def test_fork_bomb_times_out(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.C, programs.FORK_BOMB_C)
    assert result.verdict is Verdict.TIMEOUT, result
    assert result.run_ms is not None and result.run_ms < 3000 + 2000


async def test_fork_bomb_is_held_by_the_pids_limit(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.FORK_COUNT_PY)
    assert result.verdict is Verdict.OK, result
    (line,) = lines(result)
    held = int(line.split()[3].rstrip(":"))
    assert 10 < held < 64, line


async def test_memory_bomb_is_memory_limit(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.MEMORY_BOMB_PY)
    assert result.verdict is Verdict.MEMORY_LIMIT, result
    assert result.exit_code == 137 and b"256 MiB" in result.diag


async def test_network_access_fails(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.NETWORK_PY)
    assert result.verdict is Verdict.OK, result
    output = lines(result)
    assert output[0] == "interfaces ['lo']"
    assert [line for line in output if line.startswith("connect failed")].__len__() == 3
    assert not any(line.startswith(("connected", "resolved")) for line in output)
    assert output[-1].startswith("dns failed")


async def test_writing_outside_the_work_dir_fails(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.WRITE_OUTSIDE_PY)
    assert result.verdict is Verdict.OK, result
    output = lines(result)
    assert not any(line.startswith("WROTE") for line in output), output
    assert sum(line.startswith("refused") for line in output) == 8
    assert output[-1] == "workdir ok 2"


async def test_filling_the_tmpfs_stops_at_its_size(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.FILL_TMPFS_PY)
    assert result.verdict is Verdict.OK, result
    work, shm = (line.split() for line in lines(result))
    assert work[0] == "sandbox" and int(work[1]) <= 16 << 20 and work[2] == "OSError"
    assert shm[0] == "shm" and int(shm[1]) <= 1 << 20


async def test_infinite_loop_times_out_with_its_partial_output(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.INFINITE_LOOP_PY)
    assert result.verdict is Verdict.TIMEOUT, result
    assert result.stdout == b"started\n"
    assert result.exit_code is None and b"time limit of 3 s" in result.diag
    assert result.run_ms is not None and 3000 <= result.run_ms < 5000


async def test_a_100_mb_output_flood_is_cut_at_the_cap(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = await attack(sandbox, Language.PYTHON, programs.FLOOD_PY)
    assert result.verdict is Verdict.OUTPUT_LIMIT, result
    assert result.stdout == b"x" * CAP and result.truncated == ("stdout",)
    assert time.monotonic() - started < 10


async def test_a_flood_that_bypasses_the_in_container_cap_is_cut_by_the_host(
    sandbox: Sandbox,
) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.FLOOD_VIA_PROC_PY)
    assert result.verdict is Verdict.OUTPUT_LIMIT, result
    assert len(result.stdout) == CAP and set(result.stdout) == {ord("y")}


async def test_huge_stdin_is_delivered_whole(sandbox: Sandbox) -> None:
    stdin = secrets.token_bytes(1 << 20)
    result = await attack(sandbox, Language.PYTHON, programs.STDIN_LENGTH_PY, stdin)
    assert result.verdict is Verdict.OK and result.stdout == b"1048576\n"


async def test_huge_stdin_a_program_ignores_does_not_hang(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.IGNORES_STDIN_PY, b"z" * (1 << 20))
    assert result.verdict is Verdict.OK and result.stdout == b"not reading\n"


async def test_include_dev_random_is_stopped_in_the_compile_phase(engine: Engine) -> None:
    async with open_sandbox(sandbox_config(compile_time_limit_s=5.0)) as sandbox:
        result = await attack(sandbox, Language.C, programs.COMPILE_HANG_DEV_RANDOM_C)
    # cc1 swallows /dev/random until the memory limit kills it, or the clock runs out.
    assert result.verdict in (Verdict.MEMORY_LIMIT, Verdict.TIMEOUT), result
    assert result.run_ms is None and result.compile_ms is not None
    assert result.compile_ms < 5000 + 2000
    assert our_containers(engine) == []


async def test_a_compile_that_never_ends_times_out(engine: Engine) -> None:
    async with open_sandbox(sandbox_config(compile_time_limit_s=5.0)) as sandbox:
        result = await attack(sandbox, Language.CPP, programs.COMPILE_HANG_CONSTEXPR_CPP)
    assert result.verdict is Verdict.TIMEOUT, result
    assert b"compilation exceeded its time limit of 5 s" in result.diag
    assert result.run_ms is None and result.compile_ms is not None
    assert 5000 <= result.compile_ms < 7000
    assert our_containers(engine) == []


async def test_no_privilege_can_be_gained(sandbox: Sandbox) -> None:
    result = await attack(sandbox, Language.PYTHON, programs.PRIVILEGES_PY)
    assert result.verdict is Verdict.OK, result
    output = lines(result)
    assert output[0] == "uid 1000 1000 gid 1000"
    assert output[1] == "CapEff 0000000000000000 CapBnd 0000000000000000"
    assert output[2] == "NoNewPrivs 1"
    assert not any("ALLOWED" in line for line in output), output
    assert sum(line.startswith("denied") for line in output) == 5
    assert any(line.startswith("mount denied errno") for line in output)
    assert output[-1].startswith("setuid programs 0 ")


async def test_host_paths_cannot_be_read(sandbox: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / f"host-secret-{secrets.token_hex(4)}"
    secret.write_text("the host's secret")
    secret.chmod(0o644)
    os.chmod(tmp_path, 0o755)
    result = await attack(sandbox, Language.PYTHON, programs.read_host_paths_py(str(secret)))
    assert result.verdict is Verdict.OK, result
    output = result.stdout.decode()
    assert "host's secret" not in output
    assert f"refused {secret} FileNotFoundError" in output
    assert "refused /var/run/docker.sock FileNotFoundError" in output
    assert "refused /etc/shadow PermissionError" in output
    assert "listed /home ['runner']" in output
    assert output.splitlines()[-1] in ("pid1 /sbin/docker-init", "pid1 /dev/init")
