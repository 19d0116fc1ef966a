"""The File Data probe: a ticketless SYN, answered with RST NO_SESSION by a real server."""

from __future__ import annotations

import socket

import pytest
import trio

from syncrox.client.probe import probe_datagram, probe_file_data
from syncrox.errors import RemoteProtocolError
from syncrox.protocol.rudp.codec import encode_json
from syncrox.protocol.rudp.packets import Packet, PacketType
from syncrox.services.context import BoundPorts
from tests.conftest import IO_TIMEOUT_S

# The server answers a SYN for an unknown session only if its RST (this many bytes, the
# seed's eight fields) is no larger than the SYN (docs/PROTOCOL.md, Reset reasons).
NO_SESSION_RST_BYTES = 149


def test_the_probe_is_large_enough_to_be_answered() -> None:
    assert len(probe_datagram("0" * 32)) >= NO_SESSION_RST_BYTES
    rst = Packet(PacketType.RST, "0" * 32, error="NO_SESSION")
    assert len(encode_json(rst)) == NO_SESSION_RST_BYTES


async def test_a_running_file_data_service_answers_the_probe(services: BoundPorts) -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        rtt_s = await probe_file_data("127.0.0.1", services["files_udp"])
    assert 0 < rtt_s < IO_TIMEOUT_S


async def test_nothing_listening_is_an_error_or_silence_never_a_success() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    answered = False
    with trio.move_on_after(1.0):
        try:
            await probe_file_data("127.0.0.1", port)
            answered = True
        except OSError:
            pass  # ICMP port unreachable: the port is closed
    assert not answered


async def test_another_answer_is_refused() -> None:
    # A UDP echo server answers with our own SYN: not the protocol's answer.
    with trio.fail_after(IO_TIMEOUT_S):
        echo = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await echo.bind(("127.0.0.1", 0))
        port = echo.getsockname()[1]

        async def echo_once() -> None:
            data, address = await echo.recvfrom(65535)
            await echo.sendto(data, address)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_once)
            with pytest.raises(RemoteProtocolError, match="unexpected SYN"):
                await probe_file_data("127.0.0.1", port)
        echo.close()
