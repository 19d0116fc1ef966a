"""`syncrox-trio chat` as a user runs it: two terminals against a real server process."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from tests.e2e.process import running_server

CLI_TIMEOUT_S = 30


class Terminal:
    """A `syncrox-trio chat` process whose stdin we type into and whose stdout we read."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "syncrox", "chat", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.seen: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        self._pump_thread = threading.Thread(
            target=self._pump, args=(self.process.stdout,), daemon=True
        )
        self._pump_thread.start()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=CLI_TIMEOUT_S)
        self._pump_thread.join(timeout=CLI_TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, fragment: str) -> str:
        """The first line printed so far, or from now on, that contains ``fragment``."""
        for line in self.seen:
            if fragment in line:
                return line
        while True:
            line = self._lines.get(timeout=CLI_TIMEOUT_S)
            self.seen.append(line)
            if fragment in line:
                return line

    def finish(self) -> tuple[int, str]:
        """End of input (like Ctrl-D): the client says BYE and exits."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        status = self.process.wait(timeout=CLI_TIMEOUT_S)
        assert self.process.stderr is not None
        return status, self.process.stderr.read()


def test_two_terminals_chat_and_share_an_image(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    picture = tmp_path / "pic.gif"
    picture.write_bytes(b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(20))
    with running_server(data_dir):
        where = ("--ports-file", str(data_dir / "ports.json"))
        created = subprocess.run(
            [sys.executable, "-m", "syncrox", "rooms", "create", "--user", "zed", *where],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=True,
        )
        code = created.stdout.split()[1]
        with Terminal("--room", code, "--user", "bob", "--reserve", *where) as bob:
            bob.wait_for("* joined room")
            bob.type("hello from bob <b>not bold</b>")
            bob.wait_for("#1 bob: hello from bob <b>not bold</b>")
            bob.type(f"/img {picture}")
            bob.wait_for("* uploaded pic.gif as #2")
            with Terminal("--room", code, "--user", "amy", *where) as amy:
                converse(bob, amy, tmp_path / "copy.gif")
    assert (tmp_path / "copy.gif").read_bytes() == picture.read_bytes()


def converse(bob: Terminal, amy: Terminal, saved: Path) -> None:
    amy.wait_for("#1 bob: hello from bob")  # history on joining
    amy.wait_for("#2 bob sent image pic.gif (image/gif, 33 bytes)")
    bob.wait_for("* amy joined")
    amy.type("hi bob \x1b[31mred?")  # refused: control characters
    amy.wait_for("! refused: BAD_ARGUMENT")
    amy.type("hi bob")
    bob.wait_for("#3 amy: hi bob")
    amy.type(f"/get 2 {saved}")
    amy.wait_for("* saved #2 (33 bytes)")
    amy.type("/who")
    assert amy.wait_for("* here:") == "* here: amy, bob"

    assert amy.finish()[0] == 0
    bob.wait_for("* amy left")
    status, errors = bob.finish()
    assert status == 0
    assert "your token for bob" in errors


def test_chat_needs_room_and_user() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syncrox", "chat", "--room", "1234"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert result.returncode != 0
    assert "--room CODE and --user NAME" in result.stderr
