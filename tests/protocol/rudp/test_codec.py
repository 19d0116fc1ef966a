"""Both codecs: round trips, the seed's field names, and refusal of anything malformed
(always ``RemoteProtocolError``, never another exception)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.rudp.codec import (
    BINARY_MAGIC,
    Encoder,
    decode_datagram,
    encode,
    encode_binary,
    encode_json,
)
from syncrox.protocol.rudp.packets import MAX_DATAGRAM_BYTES, Codec, Packet, PacketType

SESSION = "0123456789abcdef0123456789abcdef"


def test_json_has_exactly_the_seeds_field_names() -> None:
    data = Encoder(Codec.JSON, SESSION, "4821", "doc.pdf").data(105, b"hello")
    obj = json.loads(data)
    seed_fields = {"type", "seq", "ack", "rwnd", "room", "filename", "payload_b64", "session_id"}
    assert set(obj) == seed_fields
    assert obj["type"] == "DATA" and obj["payload_b64"] == "aGVsbG8="


def test_seed_example_decodes() -> None:
    raw = json.dumps({
        "type": "DATA", "seq": 105, "ack": 105, "rwnd": 64, "room": "4821",
        "filename": "doc.pdf", "payload_b64": "aGVsbG8=", "session_id": SESSION,
    }).encode()  # fmt: skip
    packet = decode_datagram(raw)
    assert (packet.type, packet.seq, packet.payload, packet.room) == (
        PacketType.DATA, 105, b"hello", "4821",
    )  # fmt: skip


@pytest.mark.parametrize("codec", list(Codec))
def test_fast_encoder_matches_the_general_one(codec: Codec) -> None:
    encoder = Encoder(codec, SESSION, "4821", "a b.txt")
    data = decode_datagram(encoder.data(7, b"\x00" * 100))
    assert (data.type, data.seq, data.payload) == (PacketType.DATA, 7, b"\x00" * 100)
    ack = decode_datagram(encoder.ack(9, 5, 40, ((7, 9), (11, 11))))
    assert (ack.type, ack.seq, ack.ack, ack.rwnd, ack.sack) == (
        PacketType.ACK, 9, 5, 40, ((7, 9), (11, 11)),
    )  # fmt: skip


def test_binary_refuses_handshake_packets() -> None:
    with pytest.raises(Exception, match="always sent as JSON"):
        encode_binary(Packet(PacketType.SYN, SESSION))
    header = bytes([BINARY_MAGIC, 1, 1, 0]) + bytes(28)
    with pytest.raises(RemoteProtocolError):
        decode_datagram(header)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b"garbage",
        b'{"type": "DATA"}',  # no session
        b'{"type": "NOPE", "session_id": "%s"}' % SESSION.encode(),
        b'{"type": {"a": 1}, "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "DATA", "seq": -1, "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "DATA", "seq": 1.5, "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "DATA", "seq": true, "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "DATA", "seq": 4294967296, "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "DATA", "payload_b64": "!!", "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "SYN", "filename": "../x", "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "SYN", "room": "12", "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "ACK", "sack": [[5, 2]], "session_id": "%s"}' % SESSION.encode(),
        b'{"type": "ACK", "sack": [[1, 2]] , "session_id": "ZZ"}',
        b"[" * 100_000,
        b'{"a":' * 30_000 + b"1" + b"}" * 30_000,
        b"\xb5\x01\x04\x00",  # binary header cut short
        b"\xb5\x02" + bytes(30),  # unknown binary version
        b"\xb5\x01\x03\x09" + bytes(28),  # too many SACK blocks
        b"{" + b" " * MAX_DATAGRAM_BYTES,  # larger than a datagram
    ],
)
def test_malformed_datagrams_are_refused(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_datagram(raw)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_remote_protocol_error(raw: bytes) -> None:
    for candidate in (raw, bytes([BINARY_MAGIC, 1]) + raw, b"{" + raw):
        try:
            decode_datagram(candidate)
        except RemoteProtocolError:
            pass


packets = st.builds(
    Packet,
    type=st.sampled_from([PacketType.ACK, PacketType.DATA, PacketType.FIN, PacketType.RST]),
    session_id=st.just(SESSION),
    seq=st.integers(0, 2**32 - 1),
    ack=st.integers(0, 2**32 - 1),
    rwnd=st.integers(0, 2**32 - 1),
)


@given(packets)
def test_round_trips(packet: Packet) -> None:
    assert decode_datagram(encode_json(packet)) == packet
    binary = decode_datagram(encode_binary(packet))
    if packet.type is PacketType.DATA:  # binary DATA carries no ack/rwnd
        assert (binary.seq, binary.payload) == (packet.seq, packet.payload)
    else:
        assert binary == packet


_u32 = st.integers(0, 2**32 - 1)
# SACK blocks as the receiver makes them: every end within MAX_SEQ (a u32).
_blocks = st.lists(
    st.tuples(st.integers(1, 2**31), st.integers(0, 2**31 - 1)).map(lambda b: (b[0], b[0] + b[1])),
    max_size=8,
).map(tuple)
_filenames = st.sampled_from(["doc.pdf", "a b.txt", "données,été.csv", "李雷 & ü.bin", "x" * 200])


@given(
    st.sampled_from(list(Codec)), _filenames, st.sampled_from(["1000", "4821"]),
    _u32, _u32, _u32, _blocks,
)  # fmt: skip
def test_fast_ack_is_byte_identical_to_the_general_encoder(
    codec: Codec, name: str, room: str, seq: int, ack: int, rwnd: int,
    sack: tuple[tuple[int, int], ...],
) -> None:  # fmt: skip
    # One wire form per packet: the fast path must not differ even in key order or spacing.
    fast = Encoder(codec, SESSION, room, name).ack(seq, ack, rwnd, sack)
    packet = Packet(
        PacketType.ACK, SESSION, seq=seq, ack=ack, rwnd=rwnd, sack=sack, room=room, filename=name
    )
    assert fast == encode(packet, codec)


@given(st.sampled_from(list(Codec)), _filenames, _u32, st.binary(max_size=3000))
def test_fast_data_is_byte_identical_to_the_general_encoder(
    codec: Codec, name: str, seq: int, payload: bytes
) -> None:
    fast = Encoder(codec, SESSION, "4821", name).data(seq, payload)
    packet = Packet(PacketType.DATA, SESSION, seq=seq, payload=payload, room="4821", filename=name)
    if codec is Codec.BINARY:  # the binary codec has no room or file name to carry
        packet = Packet(PacketType.DATA, SESSION, seq=seq, payload=payload)
    assert fast == encode(packet, codec)


def test_json_sack_has_no_spaces() -> None:
    ack = Encoder(Codec.JSON, SESSION, "4821", "doc.pdf").ack(9, 5, 40, ((7, 7), (9, 10)))
    assert b'"sack":[[7,7],[9,10]]}' in ack and b" " not in ack
