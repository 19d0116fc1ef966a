"""`syncrox-trio send / files / get / netem` against a real `syncrox-trio run`: upload, list,
download, compare, as a user would type it."""

from __future__ import annotations

import csv
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.process import running_server

CLI_TIMEOUT_S = 60


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncrox", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_send_list_get_compare(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    original = tmp_path / "lecture notes.pdf"
    original.write_bytes(random.Random(9).randbytes(700_000))
    with running_server(data_dir):
        where = ("--ports-file", str(data_dir / "ports.json"))
        created = cli("rooms", "create", "--user", "alice", *where)
        assert created.returncode == 0, created.stderr
        lines = dict(line.split(" ", 1) for line in created.stdout.splitlines())
        me = ("--room", lines["room"], "--user", "alice", "--token", lines["token"], *where)

        sent_metrics = tmp_path / "send.csv"
        before = time.time()
        sent = cli("send", str(original), *me, "--algo", "cubic", "--codec", "binary",
                   "--loss", "0.02", "--delay", "1", "--seed", "4",
                   "--metrics-out", str(sent_metrics))  # fmt: skip
        after = time.time()
        assert sent.returncode == 0, sent.stderr
        assert "verified" in sent.stdout and "goodput" in sent.stdout
        # The uploader's own events, stamped in Unix epoch seconds of when they happened.
        rows = list(csv.DictReader(sent_metrics.read_text().splitlines()))
        assert rows and all(before <= float(row["ts"]) <= after for row in rows)
        transfer_id = sent.stdout.split("transfer id ")[1].split()[0]

        listed = cli("files", "list", *me)
        assert listed.returncode == 0 and "lecture notes.pdf" in listed.stdout

        copy = tmp_path / "copy.pdf"
        metrics = tmp_path / "client.csv"
        got = cli("get", "lecture notes.pdf", "--output", str(copy), *me,
                  "--metrics-out", str(metrics))  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert copy.read_bytes() == original.read_bytes()
        assert metrics.read_text().startswith("ts,room,file,direction,seq,bytes,rtt_ms")

        transfers = cli("files", "transfers", *me)
        upload_id = next(line.split()[0] for line in transfers.stdout.splitlines()
                         if " upload " in line)  # fmt: skip
        assert upload_id == transfer_id  # the id `send` printed is the one METRICS takes
        exported = cli("files", "metrics", upload_id, "--format", "csv", *me)
        assert exported.returncode == 0 and exported.stdout.startswith("ts,room,file")
        # `send` reported the uploader's events: the server has the same ones (its stamps
        # are the ticket's time on its clock plus the client's offsets, same machine here).
        stored = list(csv.DictReader(exported.stdout.splitlines()))
        assert f"{len(rows)} congestion events stored on the server" in sent.stdout
        assert [r["event"] for r in stored] == [r["event"] for r in rows]
        assert [r["cwnd"] for r in stored] == [r["cwnd"] for r in rows]
        assert all(before - 1 <= float(r["ts"]) <= after + 1 for r in stored)

        missing = cli("get", "nope.txt", "--output", str(tmp_path / "x"), *me)
        assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
        assert not (tmp_path / "x").exists()


def test_get_through_the_netem_proxy(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    original = tmp_path / "a.bin"
    original.write_bytes(random.Random(3).randbytes(200_000))
    with running_server(data_dir) as (_, ports):
        where = ("--ports-file", str(data_dir / "ports.json"))
        created = cli("rooms", "create", "--user", "bob", *where)
        lines = dict(line.split(" ", 1) for line in created.stdout.splitlines())
        me = ("--room", lines["room"], "--user", "bob", "--token", lines["token"], *where)
        assert cli("send", str(original), *me).returncode == 0
        proxy_port = free_udp_port()
        proxy = subprocess.Popen(
            [sys.executable, "-m", "syncrox", "netem", "--listen", str(proxy_port),
             "--forward", f"127.0.0.1:{ports['files_udp']}", "--loss", "0.05",
             "--delay", "2", "--reorder", "0.05", "--seed", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proxy.stdout is not None
            assert "netem proxy on" in proxy.stdout.readline()
            copy = tmp_path / "b.bin"
            got = cli("get", "a.bin", "--output", str(copy), *me,
                      "--files-udp-port", str(proxy_port))  # fmt: skip
        finally:
            proxy.terminate()
            proxy.communicate(timeout=10)
        assert got.returncode == 0, got.stderr
        assert copy.read_bytes() == original.read_bytes()
