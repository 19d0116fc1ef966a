"""A set of sequence numbers kept as sorted, disjoint, inclusive ranges.

The sender records what SACK blocks have covered, so that each ACK costs the chunks it
newly reports, not the length of its blocks: a receiver repeating (or varying) blocks
that span the whole window must not make every ACK walk the window.
"""

from __future__ import annotations

import bisect


class SeqRanges:
    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []  # _ends[k] is the last seq of the range at _starts[k]

    def __len__(self) -> int:
        """How many ranges (not sequence numbers)."""
        return len(self._starts)

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        k = bisect.bisect_right(self._starts, seq) - 1
        return k >= 0 and seq <= self._ends[k]

    def add(self, first: int, last: int) -> list[tuple[int, int]]:
        """Add ``first..last``; return the parts that were not in the set, in order."""
        if last < first:
            return []
        # The ranges that overlap or touch first..last are [i, j): they merge into one.
        i = bisect.bisect_left(self._ends, first - 1)
        j = bisect.bisect_right(self._starts, last + 1)
        new: list[tuple[int, int]] = []
        cursor = first
        for k in range(i, j):
            if self._starts[k] > cursor:
                new.append((cursor, self._starts[k] - 1))
            cursor = max(cursor, self._ends[k] + 1)
        if cursor <= last:
            new.append((cursor, last))
        start = min(first, self._starts[i]) if i < j else first
        end = max(last, self._ends[j - 1]) if i < j else last
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]
        return new

    def discard_below(self, seq: int) -> None:
        """Forget every sequence number below ``seq``."""
        k = bisect.bisect_left(self._ends, seq)
        del self._starts[:k], self._ends[:k]
        if self._starts and self._starts[0] < seq:
            self._starts[0] = seq
