"""`syncrox-trio rooms ...` against a real server, as a user would type it."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

from tests.e2e.process import running_server

CLI_TIMEOUT_S = 30


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncrox", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_rooms_commands_via_ports_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir):
        where = ("--ports-file", str(data_dir / "ports.json"))
        created = cli("rooms", "create", "--user", "alice", *where)
        assert created.returncode == 0, created.stderr
        lines = dict(line.split(" ", 1) for line in created.stdout.splitlines())
        code, token = lines["room"], lines["token"]
        assert cli("rooms", "exists", "--room", code, *where).returncode == 0
        joined = cli("rooms", "join", "--room", code, "--user", "bob", *where)
        assert joined.returncode == 0 and joined.stdout.startswith("token ")
        whoami = cli("rooms", "whoami", "--token", token, *where)
        assert whoami.stdout.split() == ["room", code, "user", "alice"]
        taken = cli("rooms", "join", "--room", code, "--user", "ALICE", *where)
        assert taken.returncode == 1 and "NAME_TAKEN" in taken.stderr
        bad = cli("rooms", "create", "--user", "two words", *where)
        assert bad.returncode != 0 and "BAD_USER" in bad.stderr
        other = "1000" if code != "1000" else "1001"
        missing = cli("rooms", "exists", "--room", other, *where)
        assert missing.returncode == 1 and "not found" in missing.stdout


def test_client_reports_an_unreachable_server(tmp_path: Path) -> None:
    result = cli("rooms", "create", "--user", "alice", "--rooms-port", "1")
    assert result.returncode == 1
    assert result.stderr.startswith("error:")


def test_doc_prints_the_rooms_document(tmp_path: Path) -> None:
    # It crashed on every run (its client read Trio's clock before Trio ran).
    data_dir = tmp_path / "data"
    with running_server(data_dir):
        where = ("--ports-file", str(data_dir / "ports.json"))
        created = cli("rooms", "create", "--user", "alice", *where)
        code = dict(line.split(" ", 1) for line in created.stdout.splitlines())["room"]
        doc = cli("doc", "--room", code, "--user", "bob", "--lang", "py", *where)
        assert doc.returncode == 0, doc.stderr
        assert doc.stdout.strip() and "Traceback" not in doc.stderr
        other = "1000" if code != "1000" else "1001"
        refused = cli("doc", "--room", other, "--user", "bob", "--lang", "py", *where)
        assert refused.returncode == 1 and refused.stderr.startswith("refused: NOT_FOUND")


def test_a_server_that_resets_the_connection_is_one_error_line() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def reset_one() -> None:
            peer, _ = listener.accept()
            peer.recv(100)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()

        threading.Thread(target=reset_one, daemon=True).start()
        port = str(listener.getsockname()[1])
        result = cli("rooms", "create", "--user", "alice", "--rooms-port", port)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")
