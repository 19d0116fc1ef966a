from __future__ import annotations

import logging

import pytest
import trio

from syncrox.logs import clip, log_event
from syncrox.services.context import BoundPorts
from tests.services.helpers import raw_client


def test_clip_bounds_and_escapes_peer_values() -> None:
    assert clip("plain") == "plain"
    assert clip("two words") == '"two words"'
    assert clip("line\nbreak") == "line\\nbreak"
    long = clip("x" * 10_000)
    assert len(long) < 140 and long.endswith("(+9880)")
    assert clip(b"\xff bytes") == '"\\ufffd bytes"'
    assert clip("") == '""'


def test_log_event_is_one_logfmt_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("syncrox.test")
    with caplog.at_level(logging.INFO, logger="syncrox"):
        log_event(logger, "conn.open", peer="127.0.0.1:1", note="a\nb")
    assert caplog.messages == ["conn.open peer=127.0.0.1:1 note=a\\nb"]


async def test_services_log_connections_and_refusals(
    services: BoundPorts, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="syncrox"), trio.fail_after(10):
        async with raw_client(services["rooms"]) as client:
            await client.ask("CREATE " + "<" * 500)
            await client.ask("BYE")
            assert await client.closed()
        await trio.sleep(0.1)  # let the server log the close
    events = [message.split(" ")[0] for message in caplog.messages]
    assert "conn.open" in events and "request.refused" in events and "conn.close" in events
    refused = next(m for m in caplog.messages if m.startswith("request.refused"))
    assert "code=BAD_USER" in refused and "<<<" not in refused and len(refused) < 300
