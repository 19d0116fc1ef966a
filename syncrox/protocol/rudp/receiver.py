"""The receiving half of a transfer: reassembly in order, the window, ACK contents. Sans-IO.

Theory of operation
-------------------
``ack`` is the highest chunk received with every chunk below it (0 = none; on a resumed
transfer, what was already stored). In-order chunks go to ``ready`` for the edge to write
(``take_ready``); chunks above a hole wait in ``_held``. The window the receiver advertises
is ``rwnd = buffer - len(ready)`` chunks beyond ``ack``: everything it holds lies inside that
window, so it never holds more than ``buffer_chunks`` chunks, and its right edge
``ack + rwnd`` never moves left. A slow disk shrinks the window to zero; once the edge has
written, a window update is sent.

Every chunk is checked against the size announced in the handshake: its seq must lie in
1..total and its length must be exactly that chunk's length, so a file can never be assembled
with holes, short chunks or a wrong size (the original's flaw 17). Chunks outside the window,
duplicates and already-delivered chunks are dropped but still acknowledged, so a sender
whose ACK was lost learns the truth.

ACKs are coalesced: ``ack_due`` is set by any DATA and cleared when the connection emits one
ACK, which names in ``seq`` the chunk that triggered it and lists up to ``MAX_SACK_BLOCKS``
ranges held above ``ack`` (the range holding that chunk first, then the lowest ones).
Except after a sign of loss: a chunk above a hole, a hole filled or a duplicate puts the
receiver in *quick-ACK mode* (after Linux's receiver, which has the same mode) for the next
``QUICK_ACK_CHUNKS`` in-order chunks, each of which is then acknowledged on its own. A
chunk beyond the window is answered at once too, but does not start the mode: it is a
window probe or a confused sender, not a loss. A sender recovering from a
loss has a small window, and one lost ACK covering two of its chunks would leave it
without news until a probe or a timeout; a loss-free transfer keeps the cheap coalesced ACKs.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.rudp.codec import BAD_DATAGRAM
from syncrox.protocol.rudp.packets import MAX_SACK_BLOCKS, chunk_length

QUICK_ACK_CHUNKS = 16  # as Linux's TCP_MAX_QUICKACKS: in-order chunks acknowledged one by one


@dataclass
class ReceiverStats:
    chunks_received: int = 0
    duplicates: int = 0
    out_of_window: int = 0
    bytes_delivered: int = 0


class Receiver:
    def __init__(
        self, *, total: int, size: int, mss: int, buffer_chunks: int, start_ack: int = 0
    ) -> None:
        self.total, self.size, self.mss = total, size, mss
        self.buffer_chunks = max(buffer_chunks, 1)
        self.ack = start_ack
        self.stats = ReceiverStats()
        self.ack_due = False
        self.unacked = 0  # chunks received since the last ACK
        self.echo = 0
        self.quick_acks = 0  # in-order chunks still to acknowledge one by one
        self._ready: list[bytes] = []
        self.advertised = self.buffer_chunks
        self._held: dict[int, bytes] = {}
        self._starts: list[int] = []  # held ranges, sorted, disjoint: [starts[i], ends[i]]
        self._ends: list[int] = []

    @property
    def rwnd(self) -> int:
        return max(self.buffer_chunks - len(self._ready), 0)

    @property
    def complete(self) -> bool:
        return self.ack >= self.total

    @property
    def held_chunks(self) -> int:
        return len(self._held) + len(self._ready)

    def on_data(self, seq: int, payload: bytes) -> bool:
        """Take one DATA chunk; raises ``RemoteProtocolError`` if it cannot be this file's.

        Returns ``True`` when this chunk deserves an ACK of its own at once (RFC 5681
        §4.2): it arrived above a hole, filled one, was a duplicate or lay outside the
        window, or it came in quick-ACK mode. Other in-order chunks are acknowledged
        together, once per batch."""
        self.check_chunk(seq, payload)
        self.ack_due = True
        self.echo = seq
        self.stats.chunks_received += 1
        self.unacked += 1
        if seq <= self.ack or seq in self._held:
            self.stats.duplicates += 1
        elif seq > self.ack + self.rwnd:
            self.stats.out_of_window += 1
            return True
        elif seq == self.ack + 1:
            filled = bool(self._starts) and self._starts[0] == seq + 1
            self._deliver(payload)
            if not filled:
                return self._quick_ack()
        else:
            self._hold(seq, payload)
        self.quick_acks = QUICK_ACK_CHUNKS  # a sign of loss: the sender is recovering
        return True

    def _quick_ack(self) -> bool:
        """Whether an in-order chunk gets its own ACK: only in quick-ACK mode."""
        if self.quick_acks:
            self.quick_acks -= 1
            return True
        return False

    def check_chunk(self, seq: int, payload: bytes) -> None:
        """Raise ``RemoteProtocolError`` unless this could be chunk ``seq`` of this file."""
        if not 1 <= seq <= self.total:
            raise RemoteProtocolError(BAD_DATAGRAM, f"chunk {seq} is outside 1..{self.total}")
        if len(payload) != chunk_length(seq, size=self.size, mss=self.mss):
            raise RemoteProtocolError(BAD_DATAGRAM, f"chunk {seq} has the wrong length")

    def _deliver(self, payload: bytes) -> None:
        self._ready.append(payload)
        self.ack += 1
        if self._starts and self._starts[0] == self.ack + 1:
            end = self._ends[0]
            del self._starts[0], self._ends[0]
            for seq in range(self.ack + 1, end + 1):
                self._ready.append(self._held.pop(seq))
            self.ack = end

    def _hold(self, seq: int, payload: bytes) -> None:
        self._held[seq] = payload
        i = bisect.bisect_right(self._starts, seq)
        joins_left = i > 0 and self._ends[i - 1] == seq - 1
        joins_right = i < len(self._starts) and self._starts[i] == seq + 1
        if joins_left and joins_right:
            self._ends[i - 1] = self._ends[i]
            del self._starts[i], self._ends[i]
        elif joins_left:
            self._ends[i - 1] = seq
        elif joins_right:
            self._starts[i] = seq
        else:
            self._starts.insert(i, seq)
            self._ends.insert(i, seq)

    def take_ready(self) -> list[bytes]:
        """The in-order chunks not yet handed out; handing them out reopens the window."""
        ready, self._ready = self._ready, []
        for chunk in ready:
            self.stats.bytes_delivered += len(chunk)
        if ready and self.advertised < self.buffer_chunks // 2 and self.ack_due is False:
            self.ack_due = self.echo > 0  # a window update (only once data has flowed)
        return ready

    def sack_blocks(self) -> tuple[tuple[int, int], ...]:
        if not self._starts:
            return ()
        blocks: list[tuple[int, int]] = []
        i = bisect.bisect_right(self._starts, self.echo) - 1
        if i >= 0 and self._ends[i] >= self.echo > self.ack:
            blocks.append((self._starts[i], self._ends[i]))
        for first, last in zip(self._starts, self._ends, strict=True):
            if len(blocks) >= MAX_SACK_BLOCKS:
                break
            if (first, last) not in blocks:
                blocks.append((first, last))
        return tuple(blocks)

    def make_ack(self) -> tuple[int, int, int, tuple[tuple[int, int], ...]]:
        """``(seq, ack, rwnd, sack)`` of the ACK to send now."""
        self.ack_due = False
        self.unacked = 0
        self.advertised = self.rwnd
        return self.echo, self.ack, self.advertised, self.sack_blocks()
