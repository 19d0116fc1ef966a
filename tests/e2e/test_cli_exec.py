"""`syncrox-trio exec` and `syncrox-trio sandbox check` against a real server and engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.process import running_server
from tests.sandbox.engine_env import our_containers, usable_engine

CLI_TIMEOUT_S = 120


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncrox", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        input=stdin,
    )


@pytest.mark.docker
def test_exec_prints_output_verdict_and_durations(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    program = tmp_path / "hello.c"
    program.write_text(
        '#include <stdio.h>\nint main(void) { char n[32]; scanf("%31s", n);'
        ' printf("hi %s\\n", n); fprintf(stderr, "to stderr\\n"); return 0; }\n'
    )
    (tmp_path / "in.txt").write_text("cli\n")
    broken = tmp_path / "Broken.java"
    broken.write_text("public class Broken { int x = ; }\n")
    with usable_engine(), running_server(data_dir):
        where = ("--ports-file", str(data_dir / "ports.json"))
        created = cli("rooms", "create", "--user", "alice", *where)
        code = dict(line.split(" ", 1) for line in created.stdout.splitlines())["room"]
        room = ("--room", code, "--user", "bob", *where)
        ran = cli("exec", str(program), "--lang", "c", "--stdin", str(tmp_path / "in.txt"), *room)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == "hi cli\n"
        assert ran.stderr.startswith("to stderr\n")
        summary = ran.stderr.splitlines()[-1]
        assert summary.startswith("[exec] verdict OK | exit 0 | compile ")
        assert " ms | run " in summary and " | id " in summary
        failed = cli("exec", str(broken), *room)  # language from the extension
        assert failed.returncode == 1
        assert "illegal start of expression" in failed.stderr
        assert "[exec] verdict COMPILE_ERROR" in failed.stderr
        check = cli("sandbox", "check")
        assert check.returncode == 0, check.stdout
        assert "image: syncrox-sandbox:latest present" in check.stdout
        assert "up to date" in check.stdout
    with usable_engine() as engine:
        assert our_containers(engine) == []


def test_exec_without_a_room_is_a_usage_error(tmp_path: Path) -> None:
    program = tmp_path / "x.py"
    program.write_text("print(1)\n")
    result = cli("exec", str(program), "--exec-port", "1")
    assert result.returncode == 2 and "--room" in result.stderr
