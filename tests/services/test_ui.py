"""The UI supervisor (``run_ui``) with stand-in children: a UI that never comes up or that
ignores SIGTERM must never take the services down nor hold up shutdown."""

from __future__ import annotations

import dataclasses
import functools
import json
import socket
import sys
from pathlib import Path

import pytest
import trio

from syncrox.config import Config
from syncrox.services import ui
from syncrox.services.runner import run_services
from tests.conftest import IO_TIMEOUT_S


def stand_in(code: str) -> object:
    return lambda *_args: [sys.executable, "-c", code]


async def test_a_ui_that_exits_while_starting_is_logged_and_not_fatal(
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(ui, "streamlit_command", stand_in("raise SystemExit(3)"))
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(ui.run_ui, config, tmp_path / "ports.json")
    assert port == 0
    assert any("ui.failed" in r.getMessage() and "returncode=3" in r.getMessage()
               for r in caplog.records)  # fmt: skip


async def test_a_ui_that_never_answers_is_given_up_on(
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(ui, "streamlit_command", stand_in("import time; time.sleep(60)"))
    monkeypatch.setattr(ui, "UI_START_TIMEOUT_S", 1.0)
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(ui.run_ui, config, tmp_path / "ports.json")
    assert port == 0
    assert any("ui.failed" in r.getMessage() for r in caplog.records)


async def test_a_ui_that_ignores_sigterm_is_killed_within_the_grace(
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Answers the health check (a tiny HTTP server on the port it is given), ignores TERM.
    server = (
        "import signal, sys, http.server\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    monkeypatch.setattr(
        ui, "streamlit_command", lambda _app, _host, port: [sys.executable, "-c", server, str(port)]
    )
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(ui.run_ui, config, tmp_path / "ports.json")
            assert port > 0
            started = trio.current_time()
            nursery.cancel_scope.cancel()
    assert trio.current_time() - started < ui.UI_STOP_GRACE_S + 1.5
    assert any("ui.killed" in r.getMessage() for r in caplog.records)


# Answers the health check on the port it is given, then exits after a second.
SHORT_LIVED_UI = (
    "import sys, threading, os, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "threading.Timer(1.0, lambda: os._exit(0)).start()\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
)


async def test_a_ui_that_dies_later_is_taken_out_of_the_ports_file(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        ui,
        "streamlit_command",
        lambda _app, _host, port: [sys.executable, "-c", SHORT_LIVED_UI, str(port)],
    )
    ports_file = config.data_dir / "ports.json"
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            ports = await nursery.start(functools.partial(run_services, config, ui=True))
            assert "ui" in ports and "ui" in json.loads(ports_file.read_text())
            for _ in range(100):  # the stand-in exits after a second
                await trio.sleep(0.1)
                if "ui" not in json.loads(ports_file.read_text()):
                    break
            assert "ui" not in json.loads(ports_file.read_text())
            assert "rooms" in json.loads(ports_file.read_text())  # the services run on
            nursery.cancel_scope.cancel()


async def test_a_ui_port_held_by_another_program_is_not_announced_as_ours(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another web server on the port answers the health check while our UI fails to bind.
    monkeypatch.setattr(ui, "streamlit_command", stand_in("import time; time.sleep(60)"))
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        taken = dataclasses.replace(
            config, ports=dataclasses.replace(config.ports, ui=other.getsockname()[1])
        )
        with trio.fail_after(IO_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(ui.run_ui, taken, tmp_path / "ports.json")
    assert port == 0
