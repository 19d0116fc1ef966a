"""The UI's File Transfer backend (``frontend/backend/transfers.py``) against a real server
in a subprocess: an upload job fills its live state while it runs and ends with a verified
result, its temporary file always removed (done, cancelled or refused); the short calls list,
download and delete; the live chart's points stay bounded; the page shows a dead service as
one error line."""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import backend
from backend import transfers
from syncrox.protocol.rudp.events import EventKind, TransferEvent

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parents[2] / "frontend" / "app.py"
JOB_TIMEOUT_S = 30.0
POLL_S = 0.02


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where jobs spool uploads and downloads land (this test's own, to check it empties)."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def job_for(
    token: str, name: str, data: bytes, netem: transfers.NetemConfig | None = None
) -> transfers.TransferJob:
    plan = transfers.UploadPlan(algo="tahoe", preset=transfers.CUSTOM, netem=netem)
    return transfers.TransferJob(backend.endpoints(), token, name, data, plan).start()


def watch(job: transfers.TransferJob) -> list[transfers.JobView]:
    """Snapshots taken until the job ends, as the page's fragment takes them."""
    views, deadline = [job.snapshot()], time.monotonic() + JOB_TIMEOUT_S
    while views[-1].running:
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(POLL_S)
        views.append(job.snapshot())
    assert job.thread.join(JOB_TIMEOUT_S)
    return views


def test_an_upload_job_runs_live_then_the_file_is_listed_downloaded_and_deleted(
    server: dict[str, int], spool: Path
) -> None:
    _, token = backend.create_room("alice")
    data = random.Random(5).randbytes(300_000)
    # Delayed so that it lasts several progress reports (0.1 s apart); lossy, seeded.
    views = watch(job_for(token, "sample.bin", data, transfers.custom_netem(5.0, 10.0, 1)))
    end = views[-1]
    assert end.status == "done" and end.outcome is not None, end.problem
    # Seen while it ran: progress short of the total, and cwnd points already there.
    assert any(v.running and 0 < v.done < len(data) for v in views)
    assert any(v.running and v.points for v in views)
    outcome = end.outcome
    assert outcome.ok and outcome.size == len(data) and end.done == len(data)
    assert outcome.retransmissions >= 1 and outcome.transfer_id
    assert end.points[0].kind == "START" and end.points[-1].kind == "COMPLETE"
    assert len(end.points) == outcome.events  # few enough to be all kept
    assert list(spool.iterdir()) == []

    [entry] = transfers.list_files(token)
    assert (entry.name, entry.size, entry.uploaded_by) == ("sample.bin", len(data), "alice")
    assert transfers.download_bytes(token, "sample.bin", entry.size) == data
    assert list(spool.iterdir()) == []
    assert outcome.transfer_id in {t.transfer_id for t in transfers.room_transfers(token)}
    transfers.delete_file(token, "sample.bin")
    assert transfers.list_files(token) == []
    with pytest.raises(backend.BackendError):
        transfers.download_bytes(token, "sample.bin", entry.size)


def test_a_closed_job_is_cancelled_and_a_refused_one_says_why(
    server: dict[str, int], spool: Path
) -> None:
    _, token = backend.create_room("bob")
    slow = transfers.PRESETS["10 ms delay"]
    assert slow is not None
    plan = transfers.UploadPlan(netem=dataclasses.replace(slow, delay_ms=500.0))
    job = transfers.TransferJob(backend.endpoints(), token, "slow.bin", b"x" * 200_000, plan)
    job.start()
    time.sleep(0.5)  # admitted, spooled, handshaking through the slow path
    job.close()
    end = watch(job)[-1]
    assert end.status == "cancelled" and end.outcome is None
    assert list(spool.iterdir()) == []
    assert transfers.list_files(token) == []

    refused = watch(job_for("0" * 32, "x.bin", b"data"))[-1]
    assert refused.status == "failed" and refused.problem
    assert list(spool.iterdir()) == []


def test_the_live_chart_keeps_a_bounded_span_of_the_whole_transfer() -> None:
    points = transfers._Points(cap=1_000)
    total = 50_000
    for index in range(total):
        kind = EventKind.FAST_RETRANSMIT if index % 997 == 0 else EventKind.ACK
        points.add(TransferEvent(0.0, kind, index, 0, None, None, None, 200.0, 10.0,
                                 float(2**20) if index < 10 else 8.0, 0, 64))  # fmt: skip
    assert len(points.rows) <= 1_000
    assert points.rows[0].index == 0 and points.rows[-1].index > total * 0.95
    assert sum(p.kind == "FAST_RETRANSMIT" for p in points.rows) == len(range(0, total, 997))
    assert points.rows[0].ssthresh is None and points.rows[-1].ssthresh == 8.0


def test_the_page_shows_a_dead_file_service_as_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports_file = tmp_path / "ports.json"
    ports_file.write_text(json.dumps({"rooms": 9, "chat": 9, "files_tcp": 9, "files_udp": 9}))
    monkeypatch.setenv("SYNCROX_PORTS_FILE", str(ports_file))
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.session_state["room"], app.session_state["user"] = "1234", "alice"
    app.session_state["token"] = "0" * 32
    app.switch_page("views/files.py").run()
    assert not app.exception
    assert [e.value for e in app.error if "file service" in e.value] != []
    assert app.button(key="files_start").disabled
