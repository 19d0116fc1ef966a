"""Codecs of reliable-UDP datagrams: the seed's JSON object and a compact binary form.

Theory of operation
-------------------
``decode_datagram`` recognises the codec by the first byte (``{`` is JSON, ``0xB5`` is the
binary magic), so a peer may use either at any time; which one a peer *sends* is negotiated
in the handshake (SYN proposes ``codec``, SYN-ACK decides). SYN and SYN-ACK are always JSON.
Both decoders are bounded (one datagram, at most ``MAX_DATAGRAM_BYTES``), validate every
field they return, and raise only ``RemoteProtocolError``: a bad datagram is dropped and
counted by the caller, never trusted.

``Encoder`` is the per-session hot path: the parts of a JSON DATA or ACK packet that never
change (type, session, room, file name) are serialised once, so sending a chunk costs one
base64 encoding and a join, and the binary codec packs a fixed header with ``struct``. Its
output is byte-identical to the general encoder's.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import struct
from typing import Any

from syncrox.errors import BAD_ARGUMENT, LocalProtocolError, ProtocolError, RemoteProtocolError
from syncrox.protocol.names import validate_filename, validate_room_code
from syncrox.protocol.rudp.packets import (
    MAX_DATAGRAM_BYTES,
    MAX_ERROR_CHARS,
    MAX_SACK_BLOCKS,
    MAX_SEQ,
    SESSION_ID_HEX_CHARS,
    SHA256_HEX_CHARS,
    Codec,
    Packet,
    PacketType,
)

# Every JSON datagram of a transfer repeats the same room and file name; checking a name
# costs more than decoding the rest, so the names that passed are remembered (a bounded
# cache; a refused name raises and is never cached).
_valid_room = functools.lru_cache(maxsize=256)(validate_room_code)
_valid_filename = functools.lru_cache(maxsize=256)(validate_filename)

BAD_DATAGRAM = "BAD_DATAGRAM"
BINARY_MAGIC = 0xB5
BINARY_VERSION = 1
# magic, version, type code, SACK block count, session id (16 raw bytes), seq, ack, rwnd
HEADER = struct.Struct("!BBBB16sIII")
SACK_BLOCK = struct.Struct("!II")
MAX_SIZE_BYTES = 2**53  # a file size a JSON number holds exactly
MAX_WORD_CHARS = 16
_HEX = frozenset("0123456789abcdef")
_TYPE_CODES = {
    PacketType.SYN: 1,
    PacketType.SYN_ACK: 2,
    PacketType.ACK: 3,
    PacketType.DATA: 4,
    PacketType.FIN: 5,
    PacketType.FIN_ACK: 6,
    PacketType.RST: 7,
}
_TYPES_BY_CODE = {code: kind for kind, code in _TYPE_CODES.items()}
_TYPES_BY_NAME = {kind.value: kind for kind in PacketType}
_JSON_ONLY = frozenset({PacketType.SYN, PacketType.SYN_ACK})
_INT_FIELDS = ("seq", "ack", "rwnd", "mss", "total")
_WORD_FIELDS = ("codec", "algo")


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(BAD_DATAGRAM, message)


# ----------------------------------------------------------------------------- decoding


def decode_datagram(data: bytes) -> Packet:
    """Parse one datagram from a peer; raise only ``RemoteProtocolError``."""
    if not data:
        raise _bad("empty datagram")
    if len(data) > MAX_DATAGRAM_BYTES:
        raise _bad("datagram larger than a UDP payload")
    if data[0] == BINARY_MAGIC:
        return _decode_binary(data)
    if data[:1] == b"{":
        return _decode_json(data)
    raise _bad("neither a JSON object nor a binary packet")


def _decode_binary(data: bytes) -> Packet:
    if len(data) < HEADER.size:
        raise _bad("binary packet shorter than its header")
    _, version, code, blocks, raw_id, seq, ack, rwnd = HEADER.unpack_from(data)
    if version != BINARY_VERSION:
        raise _bad(f"unknown binary version {version}")
    kind = _TYPES_BY_CODE.get(code)
    if kind is None or kind in _JSON_ONLY:
        raise _bad(f"type code {code} is not allowed in a binary packet")
    if blocks > MAX_SACK_BLOCKS:
        raise _bad("too many SACK blocks")
    offset = HEADER.size + blocks * SACK_BLOCK.size
    if len(data) < offset:
        raise _bad("binary packet shorter than its SACK blocks")
    sack = tuple(
        _checked_block(*SACK_BLOCK.unpack_from(data, HEADER.size + i * SACK_BLOCK.size))
        for i in range(blocks)
    )
    rest = data[offset:]
    if kind is PacketType.DATA:
        return Packet(kind, raw_id.hex(), seq=seq, payload=rest)
    if rest and kind not in (PacketType.FIN_ACK, PacketType.RST):
        raise _bad(f"unexpected bytes after a binary {kind.value}")
    error = _checked_error(_ascii(rest)) if rest else ""
    return Packet(kind, raw_id.hex(), seq=seq, ack=ack, rwnd=rwnd, sack=sack, error=error)


def _ascii(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise _bad("error text is not ASCII") from None


def _decode_json(data: bytes) -> Packet:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad("not a valid UTF-8 JSON document") from None
    if not isinstance(obj, dict):
        raise _bad("a packet must be a JSON object")
    try:
        return _packet_from_object(obj)
    except ProtocolError as exc:
        if isinstance(exc, RemoteProtocolError):
            raise
        raise _bad(exc.message) from None


def _packet_from_object(obj: dict[str, Any]) -> Packet:
    name = obj.get("type")
    kind = _TYPES_BY_NAME.get(name) if isinstance(name, str) else None
    if kind is None:
        raise _bad("missing or unknown packet type")
    fields: dict[str, Any] = {name: _int_field(obj, name, MAX_SEQ) for name in _INT_FIELDS}
    fields["size"] = _int_field(obj, "size", MAX_SIZE_BYTES)
    for name in _WORD_FIELDS:
        fields[name] = _word_field(obj, name)
    return Packet(
        kind,
        _session_field(obj),
        payload=_payload_field(obj),
        sack=_sack_field(obj),
        room=_room_field(obj),
        filename=_filename_field(obj),
        sha256=_sha_field(obj),
        error=_checked_error(_str_field(obj, "error", MAX_ERROR_CHARS)),
        **fields,
    )


def _int_field(obj: dict[str, Any], name: str, limit: int) -> int:
    value = obj.get(name, 0)
    if type(value) is not int or not 0 <= value <= limit:
        raise _bad(f"{name} must be a whole number 0..{limit}")
    return value


def _str_field(obj: dict[str, Any], name: str, limit: int) -> str:
    value = obj.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(f"{name} must be a string of at most {limit} characters")
    return value


def _word_field(obj: dict[str, Any], name: str) -> str:
    value = _str_field(obj, name, MAX_WORD_CHARS)
    if value and not (value.isascii() and value.isalnum() and value.islower()):
        raise _bad(f"{name} must be a lower-case word")
    return value


def _session_field(obj: dict[str, Any]) -> str:
    value = obj.get("session_id")
    if not isinstance(value, str) or not _is_hex(value, SESSION_ID_HEX_CHARS):
        raise _bad(f"session_id must be {SESSION_ID_HEX_CHARS} lower-case hex digits")
    return value


def _sha_field(obj: dict[str, Any]) -> str:
    value = _str_field(obj, "sha256", SHA256_HEX_CHARS)
    if value and not _is_hex(value, SHA256_HEX_CHARS):
        raise _bad("sha256 must be 64 lower-case hex digits")
    return value


def _room_field(obj: dict[str, Any]) -> str:
    value = _str_field(obj, "room", 8)
    return _valid_room(value) if value else ""


def _filename_field(obj: dict[str, Any]) -> str:
    value = _str_field(obj, "filename", 1024)
    return _valid_filename(value) if value else ""


def _payload_field(obj: dict[str, Any]) -> bytes:
    value = _str_field(obj, "payload_b64", MAX_DATAGRAM_BYTES)
    if not value:
        return b""
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _bad("payload_b64 is not strict base64") from None


def _sack_field(obj: dict[str, Any]) -> tuple[tuple[int, int], ...]:
    value = obj.get("sack", [])
    if not isinstance(value, list) or len(value) > MAX_SACK_BLOCKS:
        raise _bad(f"sack must be a list of at most {MAX_SACK_BLOCKS} [first, last] pairs")
    blocks = []
    for block in value:
        if not isinstance(block, list) or len(block) != 2:
            raise _bad("a sack block is a [first, last] pair")
        first, last = block
        if type(first) is not int or type(last) is not int:
            raise _bad("sack block bounds must be whole numbers")
        blocks.append(_checked_block(first, last))
    return tuple(blocks)


def _checked_block(first: int, last: int) -> tuple[int, int]:
    if not 1 <= first <= last <= MAX_SEQ:
        raise _bad("a sack block must satisfy 1 <= first <= last")
    return first, last


def _checked_error(text: str) -> str:
    if len(text) > MAX_ERROR_CHARS or not all(ch.isascii() and ch.isprintable() for ch in text):
        raise _bad(f"error must be printable ASCII of at most {MAX_ERROR_CHARS} characters")
    return text


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and set(text) <= _HEX


# ----------------------------------------------------------------------------- encoding


def encode_json(packet: Packet) -> bytes:
    """The seed's JSON object: every seed field, plus the extensions that are set."""
    obj: dict[str, Any] = {
        "type": packet.type.value,
        "seq": packet.seq,
        "ack": packet.ack,
        "rwnd": packet.rwnd,
        "room": packet.room,
        "filename": packet.filename,
        "payload_b64": base64.b64encode(packet.payload).decode("ascii"),
        "session_id": packet.session_id,
    }
    if packet.sack:
        obj["sack"] = [list(block) for block in packet.sack]
    for name in ("codec", "algo", "mss", "total", "size", "sha256", "error"):
        value = getattr(packet, name)
        if value:
            obj[name] = value
    return _checked_size(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def encode_binary(packet: Packet) -> bytes:
    if packet.type in _JSON_ONLY:
        raise LocalProtocolError(BAD_ARGUMENT, f"{packet.type.value} is always sent as JSON")
    header = HEADER.pack(
        BINARY_MAGIC,
        BINARY_VERSION,
        _TYPE_CODES[packet.type],
        len(packet.sack),
        bytes.fromhex(packet.session_id),
        packet.seq,
        packet.ack,
        packet.rwnd,
    )
    blocks = b"".join(SACK_BLOCK.pack(first, last) for first, last in packet.sack)
    tail = packet.payload or packet.error.encode("ascii")
    return _checked_size(header + blocks + tail)


def encode(packet: Packet, codec: Codec) -> bytes:
    if codec is Codec.BINARY and packet.type not in _JSON_ONLY:
        return encode_binary(packet)
    return encode_json(packet)


def _checked_size(data: bytes) -> bytes:
    if len(data) > MAX_DATAGRAM_BYTES:
        raise LocalProtocolError(BAD_ARGUMENT, f"a {len(data)}-byte datagram does not fit UDP")
    return data


def max_payload_bytes(codec: Codec, filename: str) -> int:
    """The largest chunk whose DATA datagram still fits in one UDP payload."""
    if codec is Codec.BINARY:
        return MAX_DATAGRAM_BYTES - HEADER.size
    overhead = 200 + len(json.dumps(filename, ensure_ascii=False).encode())
    return (MAX_DATAGRAM_BYTES - overhead) // 4 * 3


class Encoder:
    """Encodes one session's packets; DATA and ACK take a fast path whose output is
    byte-identical to ``encode`` (same keys, same order, no spaces), so there is exactly one
    wire form of each packet to document, test and fuzz."""

    def __init__(self, codec: Codec, session_id: str, room: str, filename: str) -> None:
        self.codec = codec
        self.session_id = session_id
        self.room = room
        self.filename = filename
        self._raw_id = bytes.fromhex(session_id)
        # encode_json's key order: type seq ack rwnd room filename payload_b64 session_id
        # [sack]. Only the numbers and the payload vary, so the rest is serialised once.
        where = (
            f'"room":{_json_text(room)},"filename":{_json_text(filename)},"payload_b64":"'
        ).encode()
        self._data_head = b'{"type":"DATA","seq":'
        self._data_middle = b',"ack":0,"rwnd":0,' + where
        self._id_tail = f'","session_id":"{session_id}"'.encode()
        self._ack_head = b'{"type":"ACK","seq":'
        self._ack_middle = b"," + where + self._id_tail

    def data(self, seq: int, payload: bytes) -> bytes:
        if self.codec is Codec.BINARY:
            header = HEADER.pack(BINARY_MAGIC, BINARY_VERSION, 4, 0, self._raw_id, seq, 0, 0)
            return header + payload
        return b"".join(
            (self._data_head, b"%d" % seq, self._data_middle, base64.b64encode(payload),
             self._id_tail, b"}")
        )  # fmt: skip

    def ack(self, seq: int, ack: int, rwnd: int, sack: tuple[tuple[int, int], ...]) -> bytes:
        if self.codec is Codec.BINARY:
            header = HEADER.pack(
                BINARY_MAGIC, BINARY_VERSION, 3, len(sack), self._raw_id, seq, ack, rwnd
            )
            return header + b"".join(SACK_BLOCK.pack(a, b) for a, b in sack)
        blocks = b",".join(b"[%d,%d]" % block for block in sack)
        tail = b',"sack":[' + blocks + b"]}" if sack else b"}"
        numbers = b'%d,"ack":%d,"rwnd":%d' % (seq, ack, rwnd)
        return b"".join((self._ack_head, numbers, self._ack_middle, tail))

    def packet(self, packet: Packet) -> bytes:
        return encode(packet, self.codec)


def _json_text(text: str) -> str:
    """A JSON string exactly as ``encode_json`` writes it."""
    return json.dumps(text, ensure_ascii=False)
