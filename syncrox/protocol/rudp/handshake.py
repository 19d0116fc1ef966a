"""What the handshake settles, as pure functions: the server's choice from a SYN (codec,
algorithm, chunk size, and whether a resumed upload keeps what it holds), the client's
check of the SYN-ACK, and the resume point. ``Connection`` applies them."""

from __future__ import annotations

from dataclasses import dataclass

from syncrox.protocol.rudp.codec import max_payload_bytes
from syncrox.protocol.rudp.congestion import ALGORITHMS, DEFAULT_ALGORITHM
from syncrox.protocol.rudp.packets import (
    DEFAULT_MSS_BYTES,
    MIN_MSS_BYTES,
    Codec,
    Packet,
    chunk_count,
)


@dataclass(frozen=True)
class Choice:
    codec: Codec
    algo: str
    mss: int
    resume_bytes: int  # what the upload may keep (0: start afresh)


def choose(
    syn: Packet, *, codecs: tuple[Codec, ...], max_mss_bytes: int, filename: str, size: int,
    resume_mss: int, resume_bytes: int,
) -> Choice:  # fmt: skip
    """The server's answer to ``syn``. A resumed upload keeps its first session's chunk
    size, so that the chunks held line up, if this session's codec can carry it and the
    client accepts it (at most its offer or the default: ``check_syn_ack``). Otherwise it
    starts afresh (the service then empties the partial), unless it already holds the
    whole file: then no chunk is needed at all."""
    wanted = {codec.value: codec for codec in codecs}
    codec = wanted.get(syn.codec, Codec.JSON)
    algo = syn.algo if syn.algo in ALGORITHMS else DEFAULT_ALGORITHM
    largest = min(max_mss_bytes, max_payload_bytes(codec, filename))
    client_accepts = max(syn.mss, DEFAULT_MSS_BYTES)
    if resume_mss and resume_mss <= min(largest, client_accepts):
        return Choice(codec, algo, resume_mss, resume_bytes)
    mss = min(max(syn.mss or DEFAULT_MSS_BYTES, MIN_MSS_BYTES), largest)
    return Choice(codec, algo, mss, resume_bytes if resume_bytes >= size else 0)


def resume_point(resume_bytes: int, *, size: int, mss: int) -> int:
    """Chunks a receiver already holds: all of them once it holds every byte (the last
    chunk may be short, so the division alone would ask for it again)."""
    total = chunk_count(size, mss)
    if resume_bytes >= size:
        return total
    return min(resume_bytes // mss, total)


def check_syn_ack(
    packet: Packet,
    *,
    offer_mss: int,
    upload: bool,
    size: int,
    sha256: str,
    expected: tuple[int, str] | None = None,
) -> str:
    """Why the client refuses ``packet`` (``""`` if it does not). ``expected``: the
    (size, sha256) a download's ticket named; a SYN-ACK for another file is refused at once
    rather than after the whole transfer."""
    if packet.codec not in {codec.value for codec in Codec}:
        return "unknown codec"
    if packet.algo not in ALGORITHMS:
        return "unknown algorithm"
    if not MIN_MSS_BYTES <= packet.mss <= max(offer_mss, DEFAULT_MSS_BYTES):
        return "chunk size out of range"
    if packet.total != chunk_count(packet.size, packet.mss):
        return "total does not match size"
    if upload:
        if (packet.size, packet.sha256) != (size, sha256):
            return "server expects another file"
        if packet.ack > packet.total:
            return "resume point beyond the file"
    elif not packet.sha256:
        return "no digest for the download"
    elif expected is not None and (packet.size, packet.sha256) != expected:
        return "server offers another file than its ticket named"
    return ""
