"""The Streamlit web UI as a child process of ``syncrox-trio run``.

The UI is started only after the services are listening and ``ports.json`` is written; it
learns where they are from ``SYNCROX_PORTS_FILE`` and ``SYNCROX_CONNECT_HOST``. It counts as
started once ``/_stcore/health`` answers. On shutdown it gets SIGTERM, then SIGKILL after
``UI_STOP_GRACE_S``, so ``run`` always exits within its 5-second budget. If the UI process
dies, or never answers its health check within ``UI_START_TIMEOUT_S``, the services keep
running and the failure is logged (``ui.exited``, ``ui.failed``). If ``run`` dies, even by
``kill -9``, Linux stops the UI (the parent-death signal, tied to the thread that forked it:
the thread running Trio, which lives as long as ``run``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import trio

from syncrox.config import CONFIG_ENV, Config, config_keys, env_name, environment_of
from syncrox.logs import log_event

logger = logging.getLogger("syncrox.ui")

UI_START_TIMEOUT_S = 60.0
UI_STOP_GRACE_S = 2.0
HEALTH_POLL_S = 0.2
PR_SET_PDEATHSIG = 1
FRONTEND_APP = Path(__file__).resolve().parents[2] / "frontend" / "app.py"


def connect_host(bind_host: str) -> str:
    """Where a local client should connect to reach a server bound to ``bind_host``."""
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    return wildcard.get(bind_host, bind_host)


def free_port(host: str) -> int:
    """A port that was free a moment ago (Streamlit cannot report the port it bound)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _port_free(host: str, port: int) -> bool:
    """Whether a TCP listener could bind ``port`` now (as Streamlit will, with
    SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def streamlit_command(app: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.headless", "true",
        "--server.address", host,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--logger.level", "warning",
    ]  # fmt: skip


def _die_with_parent_hook() -> Callable[[], None]:
    """What the child runs before exec: ask Linux to SIGTERM it if ``run`` dies (even
    ``kill -9``), so a crashed server never leaves an orphaned UI holding its port; and
    exit at once if ``run`` already died between the fork and that request. ``prctl`` is
    looked up here, in the parent, so the child only makes two system calls."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return hook


async def run_ui(
    config: Config,
    ports_file: Path,
    *,
    on_exit: Callable[[], None] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the web UI; ``on_exit`` is called if it exits on its own after it started."""
    if not await trio.Path(FRONTEND_APP).is_file():
        log_event(logger, "ui.missing", logging.ERROR, path=FRONTEND_APP)
        task_status.started(0)
        return
    port = config.ports.ui or free_port(config.host)
    if not _port_free(config.host, port):
        # Another program's page would answer our health check and be announced as ours.
        log_event(logger, "ui.failed", logging.ERROR, port=port, reason="port in use")
        task_status.started(0)
        return
    env = {
        **_without_config(os.environ),
        # The UI reads the same settings as the services (limits it checks before sending,
        # timeouts), whether they came from a file, the environment or --set.
        **environment_of(config),
        "SYNCROX_PORTS_FILE": str(ports_file),
        "SYNCROX_CONNECT_HOST": connect_host(config.host),
    }
    process = _spawn(streamlit_command(FRONTEND_APP, config.host, port), env)
    try:
        healthy = False
        with trio.move_on_after(UI_START_TIMEOUT_S):
            healthy = await _became_healthy(connect_host(config.host), port, process)
        if not healthy:  # the services run on without a UI, as when it dies later
            reason = f"no answer on /_stcore/health within {UI_START_TIMEOUT_S:g} s"
            log_event(logger, "ui.failed", logging.ERROR, returncode=process.poll(), reason=reason)
            task_status.started(0)
            return
        log_event(logger, "service.start", host=config.host, port=port, pid=process.pid)
        task_status.started(port)
        await _until_exit(process)
        log_event(logger, "ui.exited", logging.ERROR, returncode=process.returncode)
        if on_exit is not None:
            on_exit()
    finally:
        with trio.CancelScope(shield=True):
            await _terminate_then_kill(process)


def _without_config(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment less every setting (``SYNCROX_CONFIG`` and ``SYNCROX_<key>``): the
    child gets the effective config instead, which they may contradict."""
    settings = {CONFIG_ENV, *(env_name(key) for key in config_keys())}
    return {name: value for name, value in environ.items() if name not in settings}


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the UI from the thread that runs Trio, not from a worker thread as
    ``trio.run_process`` does: Linux sends the parent-death signal when the *thread* that
    forked exits, and Trio's idle worker threads exit after 10 s, so the UI was stopped
    10 s after every start (found by the browser tests). Forking takes milliseconds,
    once per run."""
    preexec = _die_with_parent_hook() if sys.platform == "linux" else None
    # The child only makes system calls before exec (no lock another thread could hold).
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=preexec,  # noqa: PLW1509
    )


async def _terminate_then_kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    with trio.move_on_after(UI_STOP_GRACE_S):
        await _until_exit(process)
        return
    process.kill()
    log_event(logger, "ui.killed", logging.WARNING, grace_s=UI_STOP_GRACE_S)
    await _until_exit(process)


async def _until_exit(process: subprocess.Popen[bytes]) -> None:
    """Until the process has exited and been reaped. The waiting thread is abandoned on
    cancellation; it ends with the process, which shutdown always terminates."""
    await trio.to_thread.run_sync(process.wait, abandon_on_cancel=True)


async def _became_healthy(host: str, port: int, process: subprocess.Popen[bytes]) -> bool:
    """``True`` once the UI answers its health check; ``False`` if it exits first."""
    while process.poll() is None:
        if await _health_ok(host, port):
            return True
        await trio.sleep(HEALTH_POLL_S)
    return False


async def _health_ok(host: str, port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        return False
    reply = b""
    try:
        async with stream:
            request = f"GET /_stcore/health HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n"
            await stream.send_all(request.encode("ascii"))
            with trio.move_on_after(2):
                while len(reply) < 65536 and (chunk := await stream.receive_some(4096)):
                    reply += chunk
    except trio.BrokenResourceError:
        return False
    return reply.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
