"""Scripted losses through the real sender and receiver: the congestion events of one lost
chunk, a lost retransmission, a zero window, and no go-back-N."""

from __future__ import annotations

import random

import pytest

from syncrox.protocol.rudp.codec import decode_datagram
from syncrox.protocol.rudp.connection import Direction, State
from syncrox.protocol.rudp.events import EventKind
from syncrox.protocol.rudp.packets import PacketType
from tests.protocol.rudp.harness import FakeNetwork, Pair, make_file


def drop_first_copy_of(*seqs: int) -> object:
    pending = set(seqs)

    def drop(to: str, data: bytes) -> bool:
        packet = decode_datagram(data)
        if packet.type is PacketType.DATA and packet.seq in pending:
            pending.discard(packet.seq)
            return True
        return False

    return drop


def run_with_loss(algo: str, *seqs: int, chunks: int = 120) -> Pair:
    network = FakeNetwork(random.Random(1), delay_s=0.05, spacing_s=0.0001)
    network.drop = drop_first_copy_of(*seqs)  # type: ignore[assignment]
    pair = Pair(make_file(chunks * 1024), Direction.UPLOAD, network, algo=algo, mss=1024)
    pair.run()
    assert pair.client.state is State.CLOSED and pair.server.state is State.CLOSED
    assert bytes(pair.delivered) == pair.data
    return pair


def test_reno_one_loss_fast_retransmit_inflation_deflation() -> None:
    pair = run_with_loss("reno", 60)
    kinds = [e.kind for e in pair.events]
    assert kinds.count(EventKind.FAST_RETRANSMIT) == 1
    assert EventKind.TIMEOUT not in kinds
    start = kinds.index(EventKind.FAST_RETRANSMIT)
    before, loss = pair.events[start - 1], pair.events[start]
    assert loss.ssthresh == max(int(before.cwnd) // 2, 2)
    assert loss.cwnd == loss.ssthresh + 3
    recovery = pair.events[start + 1 :]
    exit_at = [e.kind for e in recovery].index(EventKind.RECOVERY_EXIT)
    inflation = [e.cwnd for e in recovery[:exit_at] if e.kind is EventKind.DUP_ACK]
    assert inflation == [loss.cwnd + i for i in range(1, len(inflation) + 1)]
    assert recovery[exit_at].cwnd == loss.ssthresh  # deflation on the new ACK
    assert pair.client.sender is not None
    assert pair.client.sender.stats.retransmissions == 1  # selective: only the lost chunk


def test_tahoe_one_loss_restarts_from_one() -> None:
    pair = run_with_loss("tahoe", 60)
    events = [e for e in pair.events if e.kind is EventKind.FAST_RETRANSMIT]
    assert len(events) == 1 and events[0].cwnd == 1.0
    after = pair.events[pair.events.index(events[0]) + 1 :]
    assert [e.kind for e in after].count(EventKind.TIMEOUT) == 0
    assert pair.client.sender is not None and pair.client.sender.stats.retransmissions == 1


@pytest.mark.parametrize("algo", ["reno", "newreno", "cubic", "tahoe"])
def test_two_losses_in_one_window_halve_once(algo: str) -> None:
    pair = run_with_loss(algo, 60, 64)
    assert [e.kind for e in pair.events].count(EventKind.FAST_RETRANSMIT) == 1
    assert pair.client.sender is not None and pair.client.sender.stats.retransmissions == 2
    assert pair.client.sender.stats.timeouts == 0


def test_a_lost_retransmission_is_resent_without_a_timeout() -> None:
    network = FakeNetwork(random.Random(1), delay_s=0.005, spacing_s=0.0001)
    copies = {"n": 0}

    def drop(to: str, data: bytes) -> bool:
        packet = decode_datagram(data)
        if packet.type is PacketType.DATA and packet.seq == 60 and copies["n"] < 2:
            copies["n"] += 1
            return True
        return False

    network.drop = drop  # type: ignore[assignment]
    pair = Pair(make_file(200 * 1024), Direction.UPLOAD, network, algo="newreno", mss=1024)
    pair.run()
    assert bytes(pair.delivered) == pair.data
    assert pair.client.sender is not None and pair.client.sender.stats.timeouts == 0


def test_zero_window_is_probed_and_the_transfer_finishes() -> None:
    network = FakeNetwork(random.Random(2), delay_s=0.01)
    pair = Pair(make_file(64 * 1024), Direction.UPLOAD, network, mss=1024)
    pair.limits = pair.limits  # the receiver holds at most 4 chunks
    pair.server.limits = type(pair.limits)(buffer_bytes=4 * 1024, max_retries=3)
    pair.start()
    stalled_until = 5.0  # the "disk" takes nothing for the first five seconds
    while pair.now < stalled_until:
        pair.receiver.take_ready = lambda: []  # type: ignore[method-assign]
        if not pair.step():
            break
    del pair.receiver.take_ready
    for _ in range(100_000):
        if not pair.step():
            break
    assert pair.client.state is State.CLOSED
    assert bytes(pair.delivered) == pair.data
    kinds = [e.kind for e in pair.events]
    assert EventKind.WINDOW_PROBE in kinds
    rwnds = [e.rwnd for e in pair.events if e.kind is EventKind.RWND_CHANGE]
    assert 0 in rwnds
