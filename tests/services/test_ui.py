"""The UI supervisor (``run_ui``) with stand-in children: a UI that never comes up or that
ignores SIGTERM must never take the services down nor hold up shutdown."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from syncrox.config import Config
from syncrox.services import ui
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
