"""Time-based loss detection (RACK, RFC 8985) and tail probes in recovery, on the bare sender
core in scripted virtual time: a loss the duplicate count cannot see (a small window, a lost
retransmission) is found one round trip after the fact, never by waiting for the RTO, and a
chunk that is merely late is not resent."""

from __future__ import annotations

import random

import pytest

from syncrox.protocol.rudp.congestion.reno import Reno
from syncrox.protocol.rudp.connection import Direction
from syncrox.protocol.rudp.events import EventKind, TransferEvent
from syncrox.protocol.rudp.packets import Codec
from syncrox.protocol.rudp.rtt import RTO_MIN_MS, RttEstimator
from syncrox.protocol.rudp.sender import Sender
from tests.protocol.rudp.harness import FakeNetwork, Pair, make_file

MSS = 1000
RTT = 0.010


def make_sender(total: int = 20, cwnd: float = 6.0) -> tuple[Sender, list[TransferEvent]]:
    events: list[TransferEvent] = []
    sender = Sender(
        total=total, size=total * MSS, mss=MSS, source=lambda seq: bytes(MSS),
        cc=Reno(initial_cwnd=cwnd), rtt=RttEstimator(), peer_rwnd=100, max_retries=5,
        emit=events.append,
    )  # fmt: skip
    sender.start(0.0)
    return sender, events


def sent(sender: Sender, now: float) -> list[int]:
    return [seq for seq, _ in sender.poll(now)]


def test_a_hole_too_small_for_three_duplicates_is_resent_one_rtt_later() -> None:
    sender, events = make_sender()
    assert sent(sender, 0.0) == [1, 2, 3, 4, 5, 6]
    # Chunk 2 is lost: the receiver reports 1 in order and holds 3 and 4, two duplicates
    # where three are needed (and five chunks outstanding, too many for early retransmit).
    assert sender.on_ack(1, 100, ((3, 4),), 4, RTT)
    assert sent(sender, RTT) == [7, 8, 9, 10]  # slow start; 2 is not yet deemed lost
    deadline = sender.get_timer()
    assert deadline is not None
    assert RTT < deadline < RTT + RTT  # the reordering timer: 2 gets a quarter RTT more
    assert deadline < sender.rto_deadline  # type: ignore[operator]
    sender.on_timer(deadline)
    assert [e.kind for e in events].count(EventKind.FAST_RETRANSMIT) == 1
    assert sent(sender, deadline)[0] == 2  # resent first
    assert sender.stats.timeouts == 0


def test_a_chunk_that_is_only_late_is_not_resent() -> None:
    sender, _ = make_sender()
    sent(sender, 0.0)
    assert sender.on_ack(1, 100, ((3, 4),), 4, RTT)
    sent(sender, RTT)
    # Chunk 2 turns up inside the reordering allowance: nothing is lost, no timer is left.
    assert sender.on_ack(4, 100, (), 2, RTT + 0.001)
    assert sender.stats.retransmissions == 0
    assert sender.reorder_deadline is None
    assert 2 not in [seq for seq, _ in sender.poll(RTT + 0.001)]


def test_a_lost_retransmission_is_found_by_a_later_delivery_not_the_rto() -> None:
    sender, _ = make_sender()
    sent(sender, 0.0)
    sender.on_ack(1, 100, ((3, 4),), 4, RTT)
    sent(sender, RTT)
    t_resend = sender.get_timer()
    assert t_resend is not None
    sender.on_timer(t_resend)
    assert sent(sender, t_resend) == [2]  # the resend, which the network loses again
    # Everything sent before the resend arrives; that frees the window for new chunks,
    # sent after the resend, so their delivery proves the resend had its chance.
    sender.on_ack(1, 100, ((3, 10),), 10, 2 * RTT)
    after = sent(sender, 2 * RTT)
    assert after and 2 not in after  # one RTT has not passed since the resend
    arrival = 3 * RTT
    sender.on_ack(1, 100, ((3, after[0]),), after[0], arrival)
    resent = sent(sender, arrival)
    assert resent and resent[0] == 2  # resent again, about one RTT after the resend...
    assert arrival - t_resend < RTO_MIN_MS / 1000  # ...long before any RTO could fire
    assert sender.stats.timeouts == 0 and sender.stats.retransmissions == 2


def test_a_probe_goes_out_in_recovery_when_the_retransmission_is_all_in_flight() -> None:
    # Four chunks, the second lost: early retransmit resends it, and that resend is lost
    # too. Nothing else is in flight to report it, so a tail probe must, long before the RTO.
    sender, events = make_sender(total=4, cwnd=4.0)
    sent(sender, 0.0)
    sender.on_ack(1, 100, ((3, 4),), 4, RTT)
    assert sent(sender, RTT) == [2]
    assert sender.cc.in_recovery
    probe_at = sender.tlp_deadline
    assert probe_at is not None and probe_at < sender.rto_deadline  # type: ignore[operator]
    sender.on_timer(probe_at)
    assert sent(sender, probe_at) == [2]
    assert EventKind.TAIL_PROBE in [e.kind for e in events]
    sender.on_ack(4, 100, (), 2, probe_at + RTT)
    assert sender.done and sender.stats.timeouts == 0


def upload_over(network: FakeNetwork, algo: str) -> Pair:
    pair = Pair(make_file(300_000), Direction.UPLOAD, network, algo=algo, codec=Codec.BINARY,
                mss=1000)  # fmt: skip
    pair.run()
    assert bytes(pair.delivered) == pair.data
    return pair


@pytest.mark.parametrize(("algo", "bound"), [("reno", 15), ("cubic", 100)])
def test_late_originals_behind_a_queue_set_off_no_storm_of_resends(algo: str, bound: int) -> None:
    # A standing queue (0.5 ms per datagram) and 2 % of datagrams held back: an original
    # that arrives after its resend must not pass for the resend's delivery, or everything
    # sent before that resend is deemed lost, and so on (once: all 300 chunks sent twice).
    network = FakeNetwork(random.Random(3), reorder=0.02, spacing_s=0.0005)
    sender = upload_over(network, algo).client.sender
    assert sender is not None
    assert sender.stats.retransmissions <= bound


def test_a_jittery_path_widens_the_reordering_window() -> None:
    # No loss at all, 4 ms of jitter: every resend is spurious. Reordering seen (and
    # spurious resends) must widen the window so they stay rare.
    resent = 0
    for seed in range(8):
        network = FakeNetwork(random.Random(seed), jitter_s=0.004, spacing_s=0.0001)
        sender = upload_over(network, "reno").client.sender
        assert sender is not None
        resent += sender.stats.retransmissions
    assert resent <= 60  # of 2 400 chunks sent once


def test_lost_acks_are_not_taken_for_reordering() -> None:
    # 5 % loss both ways, nothing reordered: a resend made needless by a lost ACK (a tail
    # probe, say) widens the window for a while (RFC 8985's DSACK rule) but is no proof of
    # reordering, so losses found in recovery are still resent at once (no reordering
    # window there). Counting it as reordering made 4 of these 8 transfers wait.
    widened = seen = 0
    for seed in range(8):
        sender = upload_over(FakeNetwork(random.Random(seed), loss=0.05), "reno").client.sender
        assert sender is not None
        widened += sender._reo_mult > 1
        seen += sender._reordering_seen
    assert widened > 0  # the scenario happened
    assert seen == 0


@pytest.mark.parametrize("algo", ["tahoe", "reno", "cubic"])
def test_recoveries_end_for_every_algorithm(algo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The widened reordering window is reset after 16 recoveries (RFC 8985): those must be
    # counted whatever the algorithm does with its window (Tahoe has no fast recovery)
    # and after timeouts too.
    ended = 0
    original = Sender._recovery_ended

    def counting(self: Sender) -> None:
        nonlocal ended
        ended += 1
        original(self)

    monkeypatch.setattr(Sender, "_recovery_ended", counting)
    sender = upload_over(FakeNetwork(random.Random(2), loss=0.05), algo).client.sender
    assert sender is not None
    episodes = sender.stats.fast_retransmits + sender.stats.timeouts
    assert 0 < ended <= episodes
    assert ended >= sender.stats.fast_retransmits // 2


class _CountingChunks(dict[int, object]):
    lookups = 0

    def get(self, key: int, default: object = None) -> object:
        type(self).lookups += 1
        return super().get(key, default)


def test_an_ack_costs_what_it_reports_not_the_window() -> None:
    # A receiver that SACKs only the highest chunk, then repeats (and varies) blocks that
    # span the window, used to make every ACK walk the whole window: a cheap way for one
    # downloading client to burn the server's only thread. Counted, not timed.
    window = 2000
    sender, _ = make_sender(total=4 * window, cwnd=float(window))
    sender.peer_rwnd = 10 * window
    sender._chunks = _CountingChunks(sender._chunks)  # type: ignore[assignment]
    sent(sender, 0.0)
    top = window  # chunks 1..window are out
    sender.on_ack(0, 10 * window, ((top, top),), top, 0.011)
    sent(sender, 0.011)
    before = _CountingChunks.lookups
    for n in range(200):
        block = ((2 + n % 50, top),)  # a new start each time, the same (known) chunks
        sender.on_ack(0, 10 * window, block, top, 0.012 + n * 1e-5)
    per_ack = (_CountingChunks.lookups - before) / 200
    assert per_ack < 50, per_ack
