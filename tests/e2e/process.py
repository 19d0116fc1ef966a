"""Start ``syncrox-trio run`` as a real subprocess on free ports and find its ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from syncrox.config import Ports

PORT_FLAGS = [f"--{name.replace('_', '-')}-port" for name in Ports.__dataclass_fields__]


def run_command(data_dir: Path, *extra: str) -> list[str]:
    zero_ports = [arg for flag in PORT_FLAGS for arg in (flag, "0")]
    return [
        sys.executable,
        "-m",
        "syncrox",
        "run",
        "--data-dir",
        str(data_dir),
        *zero_ports,
        *extra,
    ]


def wait_for_ports(
    data_dir: Path, process: subprocess.Popen[bytes], timeout_s: float
) -> dict[str, int]:
    ports_file = data_dir / "ports.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early with status {process.returncode}")
        if ports_file.exists():
            ports: dict[str, int] = json.loads(ports_file.read_text())
            return ports
        time.sleep(0.05)
    raise AssertionError(f"no ports.json after {timeout_s} s")


@contextmanager
def running_server(
    data_dir: Path, extra: Sequence[str] = ("--no-ui",), timeout_s: float = 30.0
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int]]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A server killed with -9 cannot remove its ports.json; do not mistake it for ours.
    (data_dir / "ports.json").unlink(missing_ok=True)
    process = subprocess.Popen(
        run_command(data_dir, *extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield process, wait_for_ports(data_dir, process, timeout_s)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        process.communicate(timeout=10)
