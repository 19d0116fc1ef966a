"""A live link's thread: calls with deadlines, errors fit for the page, a close that never
blocks, and a session's links all ended together (the original leaked them)."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from backend.errors import BackendError
from backend.runtime import LinkThread
from backend.session import MAX_JOBS, SessionLinks

JOIN_TIMEOUT_S = 10.0


def sleeper() -> tuple[LinkThread, threading.Event]:
    ended = threading.Event()

    async def main() -> None:
        try:
            await trio.sleep_forever()
        finally:
            ended.set()

    return LinkThread("test", main), ended


def test_a_call_runs_on_the_link_and_returns_its_value() -> None:
    link, _ = sleeper()
    link.start()
    try:

        async def answer() -> int:
            await trio.lowlevel.checkpoint()
            return 42

        assert link.call(answer, timeout_s=5) == 42
    finally:
        link.close()
        assert link.join(JOIN_TIMEOUT_S)


def test_a_slow_or_failing_call_is_a_backend_error(caplog: pytest.LogCaptureFixture) -> None:
    link, _ = sleeper()
    link.start()
    try:
        with pytest.raises(BackendError, match="did not answer in time"):
            link.call(trio.sleep_forever, timeout_s=0.05)

        async def refused() -> None:
            raise ConnectionRefusedError(111, "Connection refused")

        with pytest.raises(BackendError, match="cannot reach the server"):
            link.call(refused, timeout_s=5)
        logged = [r.getMessage() for r in caplog.records if r.name == "syncrox.ui"]
        assert len(logged) == 2 and logged[1].startswith("ui.call_failed call=test reason=")
        assert link.alive  # a failed call does not end the link
    finally:
        link.close()
        assert link.join(JOIN_TIMEOUT_S)


def test_close_returns_at_once_and_the_link_ends_soon_after() -> None:
    link, ended = sleeper()
    link.start()
    started = time.monotonic()
    link.close()
    assert time.monotonic() - started < 0.5
    assert link.join(JOIN_TIMEOUT_S) and ended.is_set()
    with pytest.raises(BackendError, match="not connected"):
        link.call(trio.sleep_forever, timeout_s=1)


def test_a_link_that_crashes_says_why_and_does_not_raise_into_the_ui() -> None:
    async def broken() -> None:
        raise OSError("network is down")

    link = LinkThread("broken", broken)
    link.start()
    assert link.join(JOIN_TIMEOUT_S)
    assert link.failure is not None and "network is down" in link.failure


class Job:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_closing_a_session_closes_every_job_and_the_count_is_bounded() -> None:
    session = SessionLinks()
    jobs = [Job() for _ in range(MAX_JOBS + 2)]
    for index, job in enumerate(jobs):
        session.add_job(f"job{index}", job)
    assert [job.closed for job in jobs[:2]] == [True, True]  # the oldest made room
    assert session.job("job0") is None and session.job(f"job{MAX_JOBS + 1}") is jobs[-1]
    session.close_all()
    assert all(job.closed for job in jobs) and session.closed
