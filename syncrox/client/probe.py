"""Is the File Data service (UDP) up, and how far is it? A probe that needs no ticket.

UDP has no connection to open, so "the port accepts connections" means nothing there. The
protocol already answers one datagram without a ticket: a SYN for a session id the server
does not know gets RST ``NO_SESSION``, but only if that RST is no larger than the SYN (so a
spoofed source never gets more bytes than it sent). The probe sends such a SYN, with a
random session id (never a real one: 128 random bits) and a file name long enough to pass
that rule, and times the RST. Nothing is created on the server; it counts one unknown
session.
"""

from __future__ import annotations

import secrets
import socket

import trio

from syncrox.errors import BAD_COMMAND, ProtocolError, RemoteProtocolError
from syncrox.protocol.rudp.codec import decode_datagram, encode_json
from syncrox.protocol.rudp.packets import Packet, PacketType

# The server answers only a SYN at least as large as its RST (149 bytes): this name makes
# the SYN 200-odd bytes.
PROBE_NAME = "syncrox-probe-" + "x" * 64
NO_SESSION = "NO_SESSION"
MAX_DATAGRAM = 65535


def probe_datagram(session_id: str) -> bytes:
    return encode_json(
        Packet(PacketType.SYN, session_id, room="1000", filename=PROBE_NAME, codec="json")
    )


async def probe_file_data(host: str, port: int) -> float:
    """Round-trip time in seconds of a ticketless SYN to its ``NO_SESSION`` RST. Waits for
    ever if nothing answers: bound it with ``trio.move_on_after`` / ``fail_after``. Raises
    ``RemoteProtocolError`` if something else answers, ``OSError`` if the port is closed
    (ICMP port unreachable)."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, address = infos[0]
    session_id = secrets.token_hex(16)
    with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
        await sock.connect(address)  # only the server's datagrams, and ICMP errors, reach us
        started = trio.current_time()
        await sock.send(probe_datagram(session_id))
        while True:
            data = await sock.recv(MAX_DATAGRAM)
            try:
                packet = decode_datagram(data)
            except ProtocolError:
                continue  # not ours to judge: keep waiting for the answer
            if packet.session_id != session_id:
                continue
            if packet.type is PacketType.RST and packet.error == NO_SESSION:
                return trio.current_time() - started
            raise RemoteProtocolError(BAD_COMMAND, f"unexpected {packet.type.value} to a probe")
