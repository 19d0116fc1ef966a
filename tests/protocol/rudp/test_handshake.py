"""The handshake's choices, on their own (``Connection`` tests cover them in context)."""

from __future__ import annotations

from syncrox.protocol.rudp.handshake import Choice, check_syn_ack, choose, resume_point
from syncrox.protocol.rudp.packets import Codec, Packet, PacketType, chunk_count

SESSION = "00112233445566778899aabbccddeeff"
BOTH = (Codec.JSON, Codec.BINARY)


def syn(codec: Codec = Codec.BINARY, mss: int = 4096) -> Packet:
    return Packet(PacketType.SYN, SESSION, codec=codec.value, algo="reno", mss=mss)


def pick(offer: Packet, *, resume_mss: int, resume_bytes: int) -> Choice:
    return choose(
        offer, codecs=BOTH, max_mss_bytes=61440, filename="f.bin", size=100_000,
        resume_mss=resume_mss, resume_bytes=resume_bytes,
    )  # fmt: skip


def test_a_resume_keeps_its_chunk_size_only_where_it_fits() -> None:
    kept = pick(syn(mss=8192), resume_mss=8192, resume_bytes=40_960)
    assert (kept.mss, kept.resume_bytes) == (8192, 40_960)
    # The client now offers the default: 8192 is more than it would accept.
    fresh = pick(syn(), resume_mss=8192, resume_bytes=40_960)
    assert (fresh.mss, fresh.resume_bytes) == (4096, 0)
    # JSON cannot carry a 60 KiB chunk in one datagram.
    json = pick(syn(Codec.JSON, 61440), resume_mss=61440, resume_bytes=61440)
    assert json.codec is Codec.JSON and json.mss < 61440 and json.resume_bytes == 0
    # A partial holding the whole file needs no chunk, whatever the chunk size.
    whole = pick(syn(), resume_mss=8192, resume_bytes=100_000)
    assert (whole.mss, whole.resume_bytes) == (4096, 100_000)


def test_the_resume_point_counts_a_short_last_chunk_as_held() -> None:
    assert resume_point(10_000, size=10_000, mss=4096) == chunk_count(10_000, 4096) == 3
    assert resume_point(8192, size=10_000, mss=4096) == 2
    assert resume_point(8000, size=10_000, mss=4096) == 1
    assert resume_point(0, size=0, mss=4096) == chunk_count(0, 4096)


def test_the_client_refuses_a_chunk_size_above_its_offer_or_the_default() -> None:
    ack = Packet(
        PacketType.SYN_ACK, SESSION, codec="json", algo="reno", mss=8192, size=10_000,
        total=chunk_count(10_000, 8192), sha256="a" * 64,
    )  # fmt: skip
    for offer, verdict in ((4096, "chunk size out of range"), (8192, "")):
        found = check_syn_ack(ack, offer_mss=offer, upload=True, size=10_000, sha256="a" * 64)
        assert found == verdict


def test_a_download_refuses_a_syn_ack_for_another_file_than_its_ticket() -> None:
    # It ran the whole transfer, then refused the file and deleted a good resumable .part.
    ack = Packet(
        PacketType.SYN_ACK, SESSION, codec="json", algo="reno", mss=4096, size=10_000,
        total=chunk_count(10_000, 4096), sha256="a" * 64,
    )  # fmt: skip

    def verdict(expected: tuple[int, str] | None) -> str:
        return check_syn_ack(
            ack, offer_mss=4096, upload=False, size=0, sha256="", expected=expected
        )

    assert verdict((10_000, "a" * 64)) == "" and verdict(None) == ""
    assert verdict((9_999, "a" * 64)) == "server offers another file than its ticket named"
    assert verdict((10_000, "b" * 64)) == "server offers another file than its ticket named"
