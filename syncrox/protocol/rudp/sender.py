"""The sending half of a transfer: windows, loss detection, retransmission. Sans-IO.

Theory of operation
-------------------
Chunks are numbered 1..``total``. ``una`` is the lowest chunk not cumulatively acknowledged,
``nxt`` the next new chunk. Every chunk in [una, nxt) has a record: when it was last sent,
how often, whether the receiver reported it in a SACK block, whether it is deemed lost.

*Pipe* (RFC 6675) is what is still in the network: outstanding chunks minus SACKed ones minus
those deemed lost and not yet resent. ``poll`` sends while pipe < the congestion window,
resending lost chunks first (lowest first), then new chunks up to the receiver's right edge
``una - 1 + rwnd``; the effective window is therefore min(cwnd, rwnd). Only what is missing
is resent (selective repeat, never go-back-N).

Loss detection: a chunk is lost when ``dupthresh`` chunks above it were SACKed (the classic
"three duplicate ACKs" when the receiver ACKs every chunk); a resent chunk is lost again when
``dupthresh`` transmissions sent after it were delivered. And by time, as RACK does (RFC
8985): a chunk is lost when a chunk *sent after it* was delivered and it has had one RTT
(that chunk's) plus a reordering allowance to arrive, without any count. This is what finds a
lost retransmission, or a loss in a window of three chunks, in one RTT instead of an RTO
(at least 200 ms): the count rules need more chunks in flight than a small window has. A
chunk not yet overdue arms the reordering timer for the moment it would be. The congestion
controller reacts once per window of data (``_recovery_end``). The dup-ACK threshold
starts at 3 and rises when a chunk that was sent once turns up late (real reordering, not
loss), so reordering does not trigger spurious fast retransmits; the time allowance widens
each round trip in which a resend proves spurious (its chunk arrived sooner than any RTT
after the resend: the original it was). A resent chunk's own delivery is ambiguous (which
copy arrived?) and moves the time rule's clock only when its earlier copy predates the
last RTO.

Timer: one retransmission timer (RFC 6298), restarted when the ACK advances, on a fast
retransmit and on a timeout. A timeout backs the RTO off, tells the controller, and marks
every unSACKed outstanding chunk lost. ``max_retries`` timeouts in a row with no ACK at all
fail the transfer. When the receiver's window is zero the timer turns into a persist timer:
it probes with one chunk and keeps backing off, and the transfer never counts as failing
while the receiver still answers.

RTT: sampled only from the chunk an ACK names in its ``seq`` field, only if that chunk was
sent exactly once (Karn) and this ACK delivered it; stale ACKs (below ``una - 1``) and ACKs
beyond what was sent are ignored entirely.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
from dataclasses import dataclass

from syncrox.errors import BAD_ARGUMENT, LocalProtocolError
from syncrox.protocol.rudp.congestion import CongestionControl
from syncrox.protocol.rudp.events import EventKind, TransferEvent
from syncrox.protocol.rudp.packets import chunk_length
from syncrox.protocol.rudp.ranges import SeqRanges
from syncrox.protocol.rudp.rtt import RttEstimator

ChunkSource = Callable[[int], bytes]  # seq (1-based) -> that chunk's bytes
EventHook = Callable[[TransferEvent], None]

INITIAL_DUPTHRESH = 3  # the seed's "3 duplicate ACKs"
MAX_DUPTHRESH = 16
EARLY_RETRANSMIT_BELOW = 4  # RFC 5827: fewer chunks outstanding lower the threshold
TLP_MIN_S = 0.010  # RFC 8985's floor of the probe timeout
MAX_REO_MULT = 8  # the reordering window grows to at most 2 minimum RTTs (and SRTT)
REO_PERSIST_RECOVERIES = 16  # RFC 8985's reo_wnd_persist


@dataclass(slots=True)
class _Chunk:
    sent_at: float
    size: int
    order: int  # value of the transmission counter at its latest transmission
    tx: int = 1
    previous_sent_at: float = float("-inf")  # the transmission before the latest
    sacked: bool = False
    lost: bool = False


@dataclass
class SenderStats:
    chunks_sent: int = 0
    retransmissions: int = 0
    fast_retransmits: int = 0
    timeouts: int = 0
    bytes_acked: int = 0
    stale_acks: int = 0
    invalid_acks: int = 0


class Sender:
    def __init__(
        self,
        *,
        total: int,
        size: int,
        mss: int,
        source: ChunkSource,
        cc: CongestionControl,
        rtt: RttEstimator,
        peer_rwnd: int,
        max_retries: int,
        first_seq: int = 1,
        emit: EventHook | None = None,
    ) -> None:
        self.total, self.size, self.mss = total, size, mss
        self.source, self.cc, self.rtt, self.emit = source, cc, rtt, emit
        self.max_retries = max_retries
        self.una = self.nxt = first_seq
        self.peer_rwnd = peer_rwnd
        self.stats = SenderStats()
        self.failed = False
        self.dupacks = 0
        self.dupthresh = INITIAL_DUPTHRESH
        self.cwnd_limited = False
        self._chunks: dict[int, _Chunk] = {}
        self._lost: list[int] = []  # heap of chunks marked lost, not yet resent
        self._resent: dict[int, None] = {}  # resent, not lost since; by latest transmission
        self.sacked_out = 0
        self.lost_out = 0
        self.highest_sacked = 0
        self._scanned_below = first_seq  # SACK loss scan already covered [.., this)
        self._sacked = SeqRanges()  # what SACK blocks have covered, from una up
        self._top_sacked: list[int] = []  # the MAX_DUPTHRESH highest SACKed seqs, sorted
        self._order = 0
        self._delivered_order = 0
        self._recovery_end = 0  # losses at or below this seq were already reacted to
        self._recovering = False  # a loss was reacted to, its window not yet acknowledged
        self._last_timeout_s = float("-inf")
        self.retries = 0
        self.rto_deadline: float | None = None
        # Tail loss probe (RFC 8985): after ~2 SRTT of silence, one chunk goes out beyond
        # the window so that an ACK (with SACK) reveals a lost tail or a lost ACK, instead
        # of waiting for the RTO (at least 200 ms). Unlike RFC 8985, also in recovery: a
        # small window often has only the retransmission in flight, and if that is lost
        # only a later delivery (the probe's) lets loss by time notice.
        self.tlp_deadline: float | None = None
        self._tlp_armed = True
        # A fast retransmit (or a NewReno partial ACK's resend) goes out at once, even when
        # the window is full: the chunk it replaces has left the network.
        self._urgent = False
        self._urgent_new = False  # a tail probe with new data
        # RACK (RFC 8985): the chunks still in the network, oldest transmission first
        # (neither delivered nor deemed lost; a dict keeps insertion order), and the most
        # recently sent chunk known delivered: its transmission order and round trip.
        self._flight: dict[int, None] = {}
        self._rack_order = 0
        self._rack_rtt_s = 0.0
        self._min_rtt_s = float("inf")
        self.reorder_deadline: float | None = None
        self._reordering_seen = False  # a chunk sent once arrived after a later one
        self._rack_order_before_ack = 0
        self._reo_mult = 1  # the reordering window in quarters of the minimum RTT
        self._reo_persist = 0  # recoveries left before the widened window is reset
        self._reo_widened_at = float("-inf")

    # ------------------------------------------------------------------ state

    @property
    def done(self) -> bool:
        return self.una > self.total

    @property
    def outstanding(self) -> int:
        return self.nxt - self.una

    @property
    def pipe(self) -> int:
        return self.nxt - self.una - self.sacked_out - self.lost_out

    @property
    def bytes_in_flight(self) -> int:
        return self.pipe * self.mss

    def get_timer(self) -> float | None:
        if self.done or self.failed:
            return None
        deadlines = [self.rto_deadline, self.tlp_deadline, self.reorder_deadline]
        return min((d for d in deadlines if d is not None), default=None)

    # ------------------------------------------------------------------ sending

    def poll(self, now: float) -> list[tuple[int, bytes]]:
        """The chunks to transmit now, as ``(seq, payload)``."""
        out: list[tuple[int, bytes]] = []
        window = self.cc.send_window
        while self.pipe < window or (self._urgent and self._lost) or self._urgent_new:
            self._urgent = False
            if self._lost and not self._urgent_new:
                seq = heapq.heappop(self._lost)
                chunk = self._chunks.get(seq)
                if chunk is None or not chunk.lost:
                    continue
                chunk.lost = False
                self.lost_out -= 1
                out.append((seq, self._transmit(seq, chunk, now)))
            elif self.nxt <= self.total and self.nxt < self.una + self.peer_rwnd:
                self._urgent_new = False
                out.append((self.nxt, self._send_new(now)))
            else:
                self._urgent_new = False
                break
        self.cwnd_limited = self.pipe >= window
        if self.rto_deadline is None and (self.outstanding or self._zero_window_stall()):
            self.rto_deadline = now + self.rtt.rto_s
        if out:
            self._arm_tlp(now)
        return out

    def _arm_tlp(self, now: float) -> None:
        srtt_ms = self.rtt.srtt_ms
        if not self._tlp_armed or srtt_ms is None or not self.outstanding:
            self.tlp_deadline = None
            return
        self.tlp_deadline = now + max(2 * srtt_ms / 1000.0, TLP_MIN_S)

    def _zero_window_stall(self) -> bool:
        return self.peer_rwnd == 0 and self.nxt <= self.total

    def _send_new(self, now: float) -> bytes:
        seq = self.nxt
        payload = self._read(seq)
        self._order += 1
        self._chunks[seq] = _Chunk(now, len(payload), self._order)
        self._flight[seq] = None
        self.nxt += 1
        self.stats.chunks_sent += 1
        return payload

    def _transmit(self, seq: int, chunk: _Chunk, now: float) -> bytes:
        self._order += 1
        chunk.previous_sent_at = chunk.sent_at
        chunk.sent_at, chunk.order = now, self._order
        chunk.tx += 1
        self._flight.pop(seq, None)
        self._flight[seq] = None  # now the newest transmission
        self._resent.pop(seq, None)
        self._resent[seq] = None  # now the newest resend
        self.stats.chunks_sent += 1
        self.stats.retransmissions += 1
        return self._read(seq)

    def _read(self, seq: int) -> bytes:
        payload = self.source(seq)
        if len(payload) != chunk_length(seq, size=self.size, mss=self.mss):
            raise LocalProtocolError(BAD_ARGUMENT, f"the source changed: chunk {seq} is short")
        return payload

    # ------------------------------------------------------------------ ACKs

    def on_ack(
        self, ack: int, rwnd: int, sack: tuple[tuple[int, int], ...], echo: int, now: float
    ) -> bool:
        """Take one ACK; ``False`` if it was ignored (stale, or acknowledging chunks never
        sent), so it proves nothing about who sent it."""
        if ack < self.una - 1:
            self.stats.stale_acks += 1
            return False
        if ack >= self.nxt:
            self.stats.invalid_acks += 1
            return False
        self.retries = 0
        self._rack_order_before_ack = self._rack_order
        echo_chunk = self._chunks.get(echo) if echo >= self.una else None
        echo_was_new = echo_chunk is not None and not echo_chunk.sacked
        self._note_reordering(echo, echo_chunk, echo_was_new)
        if rwnd != self.peer_rwnd:
            self.peer_rwnd = rwnd
            self._event(now, EventKind.RWND_CHANGE, ack)
        newly_sacked = self._apply_sack(sack, now) if sack else 0
        if ack >= self.una:
            self._on_new_ack(ack, now, echo_chunk, echo_was_new)
        elif newly_sacked:
            self._on_duplicates(newly_sacked, now, echo_chunk, echo_was_new)
        if self.highest_sacked >= self.una or self._resent or self._flight:
            self._detect_losses(now)
        if not self._flight:
            self.reorder_deadline = None  # nothing left that it could be about
        return True

    def _apply_sack(self, blocks: tuple[tuple[int, int], ...], now: float) -> int:
        newly = 0
        for first, last in blocks:
            start, end = max(first, self.una), min(last, self.nxt - 1)
            for new_first, new_last in self._sacked.add(start, end):
                for seq in range(new_first, new_last + 1):
                    newly += self._sack_one(seq, now)
            if end >= start:
                self.highest_sacked = max(self.highest_sacked, end)
        return newly

    def _sack_one(self, seq: int, now: float) -> int:
        chunk = self._chunks.get(seq)
        if chunk is None or chunk.sacked:
            return 0
        chunk.sacked, self.sacked_out = True, self.sacked_out + 1
        if chunk.lost:
            chunk.lost, self.lost_out = False, self.lost_out - 1
        bisect.insort(self._top_sacked, seq)
        if len(self._top_sacked) > MAX_DUPTHRESH:
            del self._top_sacked[0]
        self._delivered(seq, chunk, now)
        return 1

    def _delivered(self, seq: int, chunk: _Chunk, now: float) -> None:
        self._delivered_order = max(self._delivered_order, chunk.order)
        self._resent.pop(seq, None)
        self._flight.pop(seq, None)
        rtt_s = now - chunk.sent_at
        if chunk.tx > 1:
            # ACKs do not say which copy arrived. Taking a late original for its resend
            # would deem everything sent before that resend lost, and their late originals
            # would do the same in turn (a storm of spurious resends behind a standing
            # queue), so a resent chunk moves the RACK clock only when the copy before it
            # went out before the latest retransmission timeout: for a whole RTO nothing
            # at all was delivered, so that copy is gone and this must be the resend.
            if rtt_s < self._min_rtt_s:
                self._spurious_resend(now)  # faster than any path: the original it was
                return
            if chunk.previous_sent_at >= self._last_timeout_s:
                return
        else:
            self._min_rtt_s = min(self._min_rtt_s, rtt_s)
        if chunk.tx == 1 and chunk.order < self._rack_order_before_ack:
            # Sent before a chunk an earlier ACK reported, yet it arrived: reordering.
            # (Compared with the RACK chunk as it was before this ACK: one ACK reports
            # its chunks in no particular order.)
            self._reordering_seen = True
        if chunk.order > self._rack_order:
            self._rack_order, self._rack_rtt_s = chunk.order, rtt_s

    def _spurious_resend(self, now: float) -> None:
        """A chunk was resent that had not been lost (RFC 8985's DSACK case): widen the
        reordering window, at most once per round trip, for the next 16 recoveries.
        Unlike a chunk sent once arriving late, this is not proof of reordering: a lost
        ACK makes a resend needless too, so it leaves ``_reordering_seen`` alone (RFC 8985
        §6.2; counting it made a path that only loses wait a reordering window before
        every later loss, in recovery too, for the rest of the transfer)."""
        self._reo_persist = REO_PERSIST_RECOVERIES
        srtt_s = self._srtt_s() or 0.0
        if now - self._reo_widened_at >= srtt_s:
            self._reo_mult = min(self._reo_mult + 1, MAX_REO_MULT)
            self._reo_widened_at = now

    def _recovery_ended(self) -> None:
        """RFC 8985: after 16 recoveries (fast or after a timeout, whatever the algorithm
        does with its window) without a needless resend the window is reset."""
        if self._reo_persist > 0:
            self._reo_persist -= 1
            if self._reo_persist == 0:
                self._reo_mult = 1

    def _note_reordering(self, echo: int, chunk: _Chunk | None, was_new: bool) -> None:
        """The chunk that triggered this ACK was sent once and has only just arrived, yet
        chunks sent after it arrived before: the network reorders (this was not a loss),
        so wait for more duplicates before calling the next hole lost."""
        if chunk is None or not was_new or chunk.tx != 1:
            return
        if chunk.order < self._delivered_order and echo < self.highest_sacked:
            late_by = self.highest_sacked - echo
            self.dupthresh = min(max(self.dupthresh, late_by + 1), MAX_DUPTHRESH)

    def _on_new_ack(
        self, ack: int, now: float, echo_chunk: _Chunk | None, echo_was_new: bool
    ) -> None:
        acked = ack - self.una + 1
        acked_bytes = 0
        for seq in range(self.una, ack + 1):
            chunk = self._chunks.pop(seq)
            acked_bytes += chunk.size
            if chunk.sacked:
                self.sacked_out -= 1
            else:
                self._delivered(seq, chunk, now)
            if chunk.lost:
                self.lost_out -= 1
        self.una = ack + 1
        self._sacked.discard_below(self.una)
        self._scanned_below = max(self._scanned_below, self.una)
        self.dupacks = 0
        self.stats.bytes_acked += acked_bytes
        rtt_ms = self._sample(echo_chunk, echo_was_new, now)
        was_recovering = self.cc.in_recovery
        resend_head = self.cc.on_ack(
            acked, ack=ack, now=now, srtt_s=self._srtt_s(), cwnd_limited=self.cwnd_limited
        )
        if resend_head and self.outstanding:
            self._urgent = bool(self._mark_lost(self.una)) or self._urgent
        self.rto_deadline = now + self.rtt.rto_s if self.outstanding else None
        self._tlp_armed = True  # a new flight: one more probe allowed
        self._arm_tlp(now)
        kind = EventKind.ACK
        if was_recovering and not self.cc.in_recovery:
            kind = EventKind.RECOVERY_EXIT
        if self._recovering and ack >= self._recovery_end:
            self._recovering = False  # every chunk sent before the loss was reacted to
            self._recovery_ended()
        self._event(now, kind, ack, acked_bytes, rtt_ms)
        if self.done:
            self._event(now, EventKind.COMPLETE, ack)

    def _on_duplicates(
        self, count: int, now: float, echo_chunk: _Chunk | None, echo_was_new: bool
    ) -> None:
        self.dupacks += count
        rtt_ms = self._sample(echo_chunk, echo_was_new, now)
        if self.cc.in_recovery:
            self.cc.on_duplicate(count)
        self._event(now, EventKind.DUP_ACK, self.una - 1, 0, rtt_ms)

    def _sample(self, chunk: _Chunk | None, was_new: bool, now: float) -> float | None:
        if chunk is None or not was_new or chunk.tx != 1:
            return None  # Karn: never from a resent chunk, a duplicate, or a stale ACK
        rtt_ms = (now - chunk.sent_at) * 1000.0
        self.rtt.on_sample(rtt_ms, after_timeout=chunk.sent_at >= self._last_timeout_s)
        return rtt_ms

    def _srtt_s(self) -> float | None:
        return None if self.rtt.srtt_ms is None else self.rtt.srtt_ms / 1000.0

    # ------------------------------------------------------------------ loss

    def _detect_losses(self, now: float) -> None:
        highest_lost = 0
        threshold = self.threshold
        if self.dupacks >= threshold:
            highest_lost = self._mark_lost(self.una)
        boundary = self._sack_loss_boundary(threshold)
        for seq in range(max(self._scanned_below, self.una), boundary):
            highest_lost = max(highest_lost, self._mark_lost(seq))
        self._scanned_below = max(self._scanned_below, boundary)
        while self._resent:  # oldest resend first; later ones were sent later still
            seq = next(iter(self._resent))
            chunk = self._chunks.get(seq)
            if chunk is not None and self._delivered_order < chunk.order + threshold:
                break
            del self._resent[seq]  # deemed lost: its next resend puts it back
            self._mark_lost(seq, resent=True)
        highest_lost = max(highest_lost, self._detect_overdue(now))
        if highest_lost > self._recovery_end:
            self._react(now)

    def _detect_overdue(self, now: float) -> int:
        """RACK: deem lost every chunk sent before the newest delivered one that has had
        that chunk's round trip plus the reordering window to arrive; arm the reordering
        timer for the first one not yet overdue. Returns the highest new loss' seq, or 0.
        Oldest transmission first, stopping at the first chunk still in time: later ones
        were sent later, so each call costs the chunks it marks plus one."""
        self.reorder_deadline = None
        highest = 0
        allowance = self._rack_rtt_s + self._reordering_window()
        while self._flight:
            seq = next(iter(self._flight))
            chunk = self._chunks.get(seq)
            if chunk is None or chunk.sacked or chunk.lost:
                del self._flight[seq]  # settled meanwhile (kept out by every path; defensive)
                continue
            if chunk.order >= self._rack_order:
                break  # sent after the newest delivered chunk: nothing to judge it by
            overdue_at = chunk.sent_at + allowance
            if now < overdue_at:
                self.reorder_deadline = overdue_at
                break
            highest = max(highest, self._mark_lost(seq, resent=True))
        return highest

    def _reordering_window(self) -> float:
        """RFC 8985's reo_wnd: a quarter of the minimum RTT; none at all in recovery while
        the path has never reordered (losses are the likely story then); another quarter
        for each round trip in which a resend proved spurious; never beyond SRTT."""
        if not self._reordering_seen and self.cc.in_recovery:
            return 0.0
        if self._min_rtt_s == float("inf"):
            return 0.0
        window = self._min_rtt_s / 4 * self._reo_mult
        srtt_s = self._srtt_s()
        return window if srtt_s is None else min(window, srtt_s)

    @property
    def threshold(self) -> int:
        """The duplicate threshold in force: never above half the outstanding chunks, so a
        small window still recovers without a timeout (RFC 5827's early retransmit)."""
        if self.outstanding < EARLY_RETRANSMIT_BELOW:
            return max(1, min(self.dupthresh, self.outstanding - 1))
        return max(INITIAL_DUPTHRESH, min(self.dupthresh, self.outstanding // 2))

    def _sack_loss_boundary(self, threshold: int) -> int:
        """Every unSACKed chunk below the returned seq has ``threshold`` SACKed above it:
        the ``threshold``-th highest SACKed seq, if it is still outstanding and not yet
        scanned (the threshold never exceeds MAX_DUPTHRESH, so the top list suffices)."""
        top = self._top_sacked
        if len(top) >= threshold and top[-threshold] >= max(self.una, self._scanned_below):
            return top[-threshold]
        return self._scanned_below

    def _mark_lost(self, seq: int, *, resent: bool = False) -> int:
        """Deem ``seq`` lost (it will be resent first); returns it, or 0 if nothing changed.
        A chunk already resent is only marked by the transmission-order rule
        (``resent=True``), so duplicates cannot make us resend it again and again."""
        chunk = self._chunks.get(seq)
        if chunk is None or chunk.sacked or chunk.lost or (chunk.tx > 1 and not resent):
            return 0
        chunk.lost = True
        self.lost_out += 1
        self._flight.pop(seq, None)
        heapq.heappush(self._lost, seq)
        return seq

    def _react(self, now: float) -> None:
        """A new loss was detected: tell the controller once per window of data."""
        if self.cc.on_loss(ack=self.una - 1, highest_sent=self.nxt - 1, now=now):
            self.stats.fast_retransmits += 1
            self._urgent = True
            self._recovery_end = self.nxt - 1
            self._recovering = True
            self.rto_deadline = now + self.rtt.rto_s  # never a timeout right after (flaw 20)
            self._event(now, EventKind.FAST_RETRANSMIT, self.una)

    # ------------------------------------------------------------------ timer

    def on_timer(self, now: float) -> None:
        if self.done:
            return
        reordering_due = self.reorder_deadline is not None and now >= self.reorder_deadline
        if reordering_due and self._detect_overdue(now) > self._recovery_end:
            self._react(now)
        if self.tlp_deadline is not None and now >= self.tlp_deadline:
            self._probe_tail(now)
        if self.rto_deadline is None or now < self.rto_deadline:
            return
        self.retries += 1
        if self.retries > self.max_retries:
            self.failed = True
            self._event(now, EventKind.FAILED, self.una)
            return
        self.rtt.on_timeout()
        if self.peer_rwnd == 0:
            self._probe_window(now)
        else:
            self._timeout(now)
        self.rto_deadline = now + self.rtt.rto_s

    def _probe_tail(self, now: float) -> None:
        self.tlp_deadline = None
        self._tlp_armed = False
        if not self.outstanding or self.peer_rwnd == 0:
            return
        if self.nxt <= self.total and self.nxt < self.una + self.peer_rwnd:
            self._urgent_new = True  # new data if the receiver's window allows
        else:
            for seq in range(self.nxt - 1, self.una - 1, -1):
                if self._mark_lost(seq, resent=True):
                    self._urgent = True
                    break
        self.rto_deadline = now + self.rtt.rto_s
        self._event(now, EventKind.TAIL_PROBE, self.nxt - 1)

    def _probe_window(self, now: float) -> None:
        """Persist: send one chunk into the zero window so the receiver answers with its
        current window (a lost window update can never deadlock the transfer)."""
        if self.outstanding:
            self._mark_lost(self.una, resent=True)
        elif self.nxt <= self.total:
            self.peer_rwnd = 1  # just this once: the probe itself
        self._event(now, EventKind.WINDOW_PROBE, self.una)

    def _timeout(self, now: float) -> None:
        self.stats.timeouts += 1
        self._last_timeout_s = now
        self.cc.on_timeout(
            flight=self.outstanding, highest_sent=self.nxt - 1, now=now, repeated=self.retries > 1
        )
        self._recovery_end = self.nxt - 1
        self._recovering = True
        self.dupacks = 0
        self._flight.clear()
        self.reorder_deadline = None
        for seq in range(self.una, self.nxt):
            chunk = self._chunks[seq]
            if not chunk.sacked and not chunk.lost:
                chunk.lost = True
                self.lost_out += 1
                heapq.heappush(self._lost, seq)
        self._event(now, EventKind.TIMEOUT, self.una)

    # ------------------------------------------------------------------ events

    def _event(
        self, now: float, kind: EventKind, seq: int, acked: int = 0, rtt_ms: float | None = None
    ) -> None:
        if self.emit is None:
            return
        self.emit(
            TransferEvent(
                now, kind, seq, acked, rtt_ms, self.rtt.srtt_ms, self.rtt.rttvar_ms,
                self.rtt.rto_ms, self.cc.cwnd, self.cc.ssthresh, self.bytes_in_flight,
                self.peer_rwnd,
            )
        )  # fmt: skip

    def start(self, now: float) -> None:
        self._event(now, EventKind.START, self.una)
        if self.done:
            self._event(now, EventKind.COMPLETE, self.una - 1)
