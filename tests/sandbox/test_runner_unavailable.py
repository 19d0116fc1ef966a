"""Without an engine, the sandbox answers SANDBOX_UNAVAILABLE with the reason (no engine
needed, none faked: the configured socket does not exist)."""

from __future__ import annotations

import trio

from syncrox.config import SandboxConfig
from syncrox.sandbox.model import Job, Language, Verdict
from syncrox.sandbox.runner import open_sandbox


async def test_an_unreachable_engine_is_sandbox_unavailable_with_the_reason() -> None:
    config = SandboxConfig(docker_host="unix:///nonexistent/docker.sock", pool_size=2)
    async with open_sandbox(config) as sandbox:
        with trio.fail_after(10):
            sandbox.warm_up()
            result = await sandbox.run(Job(Language.PYTHON, b"print(1)"))
    assert result.verdict is Verdict.SANDBOX_UNAVAILABLE
    assert b"cannot reach the Docker engine" in result.diag
    assert not sandbox.available
    assert sandbox.live_containers() == []


async def test_the_engine_is_probed_again_only_after_the_retry_interval() -> None:
    config = SandboxConfig(docker_host="unix:///nonexistent/docker.sock", pool_size=0)
    async with open_sandbox(config) as sandbox:
        with trio.fail_after(10):
            first = await sandbox.run(Job(Language.PYTHON, b""))
            sandbox.reason = "marker"
            second = await sandbox.run(Job(Language.PYTHON, b""))
    assert b"cannot reach" in first.diag
    # Within engine_retry_interval_s nothing is probed: the last reason is repeated.
    assert second.diag == b"marker"
