"""The reliable-UDP wire record and its limits.

One ``Packet`` record serves every packet type; fields a type does not use keep their
defaults and are not put on the wire by the binary codec. Field names follow the seed's JSON
object (``type seq ack rwnd room filename payload_b64 session_id``); the extra fields
(``sack codec algo mss total size sha256 error``) are documented in docs/PROTOCOL.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# A UDP payload can never be larger than this (65535 - 8 UDP - 20 IPv4 header bytes).
MAX_DATAGRAM_BYTES = 65507
SESSION_ID_HEX_CHARS = 32
DEFAULT_MSS_BYTES = 4096  # the seed's 4 KiB chunks
MIN_MSS_BYTES = 256
MAX_SEQ = 2**32 - 1  # every number field fits the binary codec's u32
MAX_SACK_BLOCKS = 8
MAX_ERROR_CHARS = 64
SHA256_HEX_CHARS = 64
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class PacketType(enum.Enum):
    SYN = "SYN"
    SYN_ACK = "SYN-ACK"
    ACK = "ACK"
    DATA = "DATA"
    FIN = "FIN"
    FIN_ACK = "FIN-ACK"
    RST = "RST"  # extension: a clear refusal or abort instead of the original's silence


class Codec(enum.Enum):
    JSON = "json"  # the seed's format: one JSON object per datagram, payload in base64
    BINARY = "binary"  # extension: a 32-byte struct header plus the raw payload


@dataclass(frozen=True, slots=True)
class Packet:
    type: PacketType
    session_id: str
    seq: int = 0
    ack: int = 0
    rwnd: int = 0
    payload: bytes = b""
    # Extension: chunk ranges received above ``ack`` (inclusive pairs), so the sender resends
    # only what is missing. On an ACK, ``seq`` names the DATA that triggered it (0 on the
    # handshake's ACK), which is how RTT is sampled without ambiguity.
    sack: tuple[tuple[int, int], ...] = ()
    room: str = ""
    filename: str = ""
    # Handshake negotiation (SYN / SYN-ACK) and RST reasons.
    codec: str = ""
    algo: str = ""
    mss: int = 0
    total: int = 0
    size: int = 0
    sha256: str = ""
    error: str = ""


def chunk_count(size: int, mss: int) -> int:
    """How many DATA chunks a ``size``-byte file takes (0 for an empty file)."""
    return (size + mss - 1) // mss


def chunk_length(seq: int, *, size: int, mss: int) -> int:
    """The exact payload length of chunk ``seq`` (1-based) of a ``size``-byte file."""
    return min(mss, size - (seq - 1) * mss)
