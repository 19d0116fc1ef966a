"""Home's service status: each service up or down, with its round-trip latency.

TCP services: the time to open a connection (one round trip: SYN, SYN-ACK). The File Data
port (UDP) has no connection to open: it is timed with a ticketless probe the protocol
already answers (``syncrox.client.probe``). The web UI itself is up if this page renders.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import trio

from backend import call
from backend.errors import user_message
from syncrox.client.endpoints import Endpoints
from syncrox.client.probe import probe_file_data

PROBE_TIMEOUT_S = 1.0
LABELS = {
    "rooms": "Room manager (TCP)",
    "chat": "Chat + image CDN (TCP)",
    "files_tcp": "File control (TCP)",
    "files_udp": "File data (UDP)",
    "collab": "Collaborative editor (TCP)",
    "exec": "Code execution (TCP)",
}


@dataclass(frozen=True)
class Probe:
    service: str
    label: str
    port: int
    up: bool
    latency_ms: float = 0.0
    detail: str = ""


def probe_all() -> list[Probe]:
    """Every service the ports file lists (and the default ones otherwise), probed at once."""

    async def op(where: Endpoints) -> list[Probe]:
        names = [name for name in LABELS if where.ports.get(name)]
        results: dict[str, Probe] = {}
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(_probe_into, results, where.host, name, where.ports[name])
        return [results[name] for name in names]

    return call(op, timeout_s=PROBE_TIMEOUT_S * 3)


async def _probe_into(results: dict[str, Probe], host: str, name: str, port: int) -> None:
    detail = f"no answer within {PROBE_TIMEOUT_S:g} s"
    with trio.move_on_after(PROBE_TIMEOUT_S):
        try:
            if name == "files_udp":
                latency_s = await probe_file_data(host, port)
            else:
                latency_s = await _connect_time(host, port)
        except Exception as exc:  # down, whatever the reason: say it
            detail = user_message(exc)
        else:
            results[name] = Probe(name, LABELS[name], port, True, latency_s * 1000)
            return
    results[name] = Probe(name, LABELS[name], port, False, detail=detail)


async def _connect_time(host: str, port: int) -> float:
    """Seconds from SYN to SYN-ACK: the connect alone (name resolution, done first, and
    closing are not part of the round trip)."""
    family, kind, protocol, _, address = (
        await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    )[0]
    with trio.socket.socket(family, kind, protocol) as sock:
        started = time.perf_counter()
        await sock.connect(address)
        return time.perf_counter() - started
