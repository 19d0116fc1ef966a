"""``syncrox-trio run`` as a subprocess: ports, a plain TCP client, restart, kill -9, signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.process import run_command, running_server

SOCKET_TIMEOUT_S = 10.0


def ask(port: int, *lines: bytes) -> list[str]:
    """What `printf 'CREATE alice\\n' | nc 127.0.0.1 PORT` would print."""
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(b"".join(lines))
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received.decode().splitlines()


def test_run_starts_the_room_manager_on_free_ports(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as (_, ports):
        # Every service adds its keys; these are the ones this test and issue 3 rely on.
        assert {"rooms", "files_tcp", "files_udp"} <= set(ports)
        [reply] = ask(ports["rooms"], b"CREATE alice\n")
        word, code, _token = reply.split(" ")
        assert word == "ROOM" and len(code) == 4 and code.isdigit()
        replies = ask(
            ports["rooms"],
            b"garbage here\n",
            b"CREATE " + b"x" * 5000 + b"\n",
            b"EXISTS 12x4\n",
            b"CREATE bad/name\n",
            f"EXISTS {code}\n".encode(),
        )
        assert [r.split(" ")[:2] for r in replies] == [
            ["ERR", "BAD_COMMAND"],
            ["ERR", "LINE_TOO_LONG"],
            ["ERR", "BAD_ROOM"],
            ["ERR", "BAD_USER"],
            ["OK"],
        ]


def test_rooms_survive_kill_9_between_reply_and_next_request(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as (process, ports):
        [reply] = ask(ports["rooms"], b"CREATE alice\n")
        _, code, token = reply.split(" ")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    with running_server(data_dir) as (_, ports):
        assert ask(ports["rooms"], f"EXISTS {code}\n".encode(), f"WHOAMI {token}\n".encode()) == [
            "OK",
            f"MEMBER {code} alice",
        ]


def test_sigterm_stops_within_five_seconds_and_removes_ports_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as (process, ports):
        ask(ports["rooms"], b"CREATE alice\n")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=10)
        assert time.monotonic() - started < 5.0
        assert status == 0
        assert not (data_dir / "ports.json").exists()
        _, stderr = process.communicate()
        assert b"shutdown signal=SIGTERM" in stderr and b"stopped" in stderr


def test_sigint_is_a_clean_shutdown_too(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as (process, _):
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir), pytest.raises(AssertionError, match="exited early"):
        with running_server(data_dir):
            pass


# Trio's idle worker threads exit after 10 s; the UI used to be forked from one, and Linux's
# parent-death signal (sent when the *thread* that forked exits) stopped it then.
UI_OUTLIVES_WORKER_THREADS_S = 12.0


@pytest.mark.slow
def test_run_with_the_web_ui(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", extra=(), timeout_s=90) as (process, _):
        ui_port = wait_for_ui_port(tmp_path / "data")
        assert ui_healthy(ui_port)
        time.sleep(UI_OUTLIVES_WORKER_THREADS_S)  # an idle server: nothing else happens
        assert ui_healthy(ui_port), "the UI stopped while the server was idle"
        assert process.poll() is None


def ui_healthy(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S) as s:
        s.sendall(b"GET /_stcore/health HTTP/1.0\r\n\r\n")
        return s.recv(4096).startswith(b"HTTP/1.1 200")


def wait_for_ui_port(data_dir: Path, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ports = json.loads((data_dir / "ports.json").read_text())
        if "ui" in ports:
            return int(ports["ui"])
        time.sleep(0.2)
    raise AssertionError("the UI never reported its port")


@pytest.mark.slow
def test_the_ui_does_not_outlive_a_killed_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, extra=(), timeout_s=90) as (process, _):
        ui_port = wait_for_ui_port(data_dir)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", ui_port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.2)
        raise AssertionError("the UI is still serving after its parent was killed")


def test_a_taken_port_is_one_clear_error_line(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        taken = str(other.getsockname()[1])
        command = run_command(tmp_path / "data", "--no-ui", "--chat-port", taken)
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]  # after the log lines
    assert last.startswith("error: cannot start the chat service"), result.stderr
    assert "Traceback" not in result.stderr
