"""Fuzz targets of the file service: both reliable-UDP codecs, a server session fed
arbitrary datagrams, File Control's command parser and its EVENTS report body. Each
returns or raises ``ProtocolError``; anything else is a bug.

Decoded packets must survive a round trip through their encoder unchanged, so nothing a
peer can send is understood differently after we re-send it.
"""

from __future__ import annotations

import dataclasses

from fuzz.targets_foundation import _drain
from syncrox.errors import ProtocolError
from syncrox.protocol import files_events as files_events_module
from syncrox.protocol.files import parse_files_command
from syncrox.protocol.files_events import encode_event_report, parse_event_report
from syncrox.protocol.framing import FrameBuffer
from syncrox.protocol.rudp.codec import (
    BINARY_MAGIC,
    decode_datagram,
    encode_binary,
    encode_json,
)
from syncrox.protocol.rudp.connection import Connection, Direction, Limits, Role
from syncrox.protocol.rudp.packets import MAX_DATAGRAM_BYTES, Packet, PacketType

SESSION = "0123456789abcdef0123456789abcdef"
SEPARATOR = b"\n--\n"
FILE_SIZE = 10_000
FILE_SHA = "ab" * 32


def _round_trip(packet: Packet, encode: object) -> None:
    try:
        again = decode_datagram(encode(packet))  # type: ignore[operator]
    except ProtocolError:
        # Only an encoder limit may refuse (a JSON re-encoding can outgrow a datagram).
        assert len(encode_json(dataclasses.replace(packet, payload=b""))) <= MAX_DATAGRAM_BYTES
        return
    assert again == packet, (again, packet)


def rudp_json(data: bytes) -> None:
    try:
        packet = decode_datagram(data)
    except ProtocolError:
        return
    _round_trip(packet, encode_json)


def rudp_binary(data: bytes) -> None:
    try:
        packet = decode_datagram(bytes([BINARY_MAGIC]) + data)
    except ProtocolError:
        return
    _round_trip(packet, encode_binary)


def rudp_session(data: bytes) -> None:
    """Datagrams separated by ``SEPARATOR`` hit an upload session on the server side; the
    session id of each is forced to the session's, so the core itself sees them."""
    conn = Connection(
        role=Role.SERVER, direction=Direction.UPLOAD, session_id=SESSION, room="4821",
        filename="doc.pdf", limits=Limits(), now=0.0, size=FILE_SIZE, sha256=FILE_SHA,
    )  # fmt: skip
    now = 0.0
    for raw in data.split(SEPARATOR):
        now += 0.01
        try:
            packet = decode_datagram(raw)
        except ProtocolError:
            continue
        packet = dataclasses.replace(packet, session_id=SESSION)
        conn.receive(packet, now)
        conn.datagrams_to_send(now)
        conn.take_ready()
        timer = conn.get_timer()
        if timer is not None and timer <= now:
            conn.handle_timer(now)
        receiver = conn.receiver
        if receiver is not None:
            assert receiver.ack <= receiver.total
            assert receiver.held_chunks <= receiver.buffer_chunks
        if packet.type is PacketType.FIN and receiver is not None:
            assert conn.state.value != "FIN_RCVD" or receiver.complete


def files_command(data: bytes) -> None:
    buffer = FrameBuffer(4096)
    buffer.feed(data + b"\n")
    for _, line in _drain(buffer):
        try:
            parse_files_command(line, max_file_bytes=1 << 30)
        except ProtocolError:
            pass


def files_events(data: bytes) -> None:
    """A report the parser takes re-encodes to events that read back the same; its fast
    path (one pattern per line) and its field-by-field path agree on every line."""
    for line in data.split(b"\n"):
        match = files_events_module._LINE.fullmatch(line)
        fast = files_events_module._parse_fields(match.groups()) if match else None
        try:
            slow: object = files_events_module._parse_line(line, 1)
        except ProtocolError:
            slow = None
        assert fast == slow, (line, fast, slow)
    try:
        events = parse_event_report(data, max_events=1000)
    except ProtocolError:
        return
    assert parse_event_report(encode_event_report(events, 0.0), max_events=1000) == events
