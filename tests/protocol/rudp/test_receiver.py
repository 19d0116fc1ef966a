"""The receiving half: which chunks earn an ACK of their own (coalescing, quick-ACK mode)."""

from __future__ import annotations

from syncrox.protocol.rudp.receiver import QUICK_ACK_CHUNKS, Receiver

MSS = 100


def receiver(total: int = 200, buffer_chunks: int = 64) -> Receiver:
    return Receiver(total=total, size=total * MSS, mss=MSS, buffer_chunks=buffer_chunks)


def chunk() -> bytes:
    return bytes(MSS)


def test_a_loss_free_stream_is_acknowledged_once_per_batch() -> None:
    rx = receiver()
    assert [rx.on_data(seq, chunk()) for seq in range(1, 41)] == [False] * 40
    assert rx.ack == 40 and rx.ack_due


def test_after_a_hole_the_next_chunks_are_acknowledged_one_by_one() -> None:
    rx = receiver()
    assert [rx.on_data(seq, chunk()) for seq in (1, 2)] == [False, False]
    assert rx.on_data(4, chunk()) is True  # above the hole at 3
    assert rx.on_data(3, chunk()) is True  # fills it
    assert rx.ack == 4
    in_order = [rx.on_data(seq, chunk()) for seq in range(5, 5 + QUICK_ACK_CHUNKS + 3)]
    assert in_order == [True] * QUICK_ACK_CHUNKS + [False] * 3


def test_a_duplicate_starts_quick_acks_again() -> None:
    rx = receiver()
    for seq in range(1, 11):
        rx.on_data(seq, chunk())
    assert rx.on_data(5, chunk()) is True  # a resend we did not need: its ACK was lost
    assert rx.stats.duplicates == 1
    assert rx.on_data(11, chunk()) is True


def test_a_chunk_beyond_the_window_is_acknowledged_but_never_taken() -> None:
    rx = receiver(buffer_chunks=4)
    for seq in range(1, 5):
        rx.on_data(seq, chunk())
    assert rx.rwnd == 0  # nothing handed to the disk yet
    assert rx.on_data(5, chunk()) is True  # a window probe: answered at once
    assert rx.ack == 4 and rx.stats.out_of_window == 1
    assert len(rx.take_ready()) == 4
    # A probe is not a sign of loss: once the disk has drained, ACKs are coalesced again.
    assert rx.quick_acks == 0
    assert rx.on_data(5, chunk()) is False
