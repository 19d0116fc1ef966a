"""Awareness of one document on the server: who is here, their cursor, whether they type.
Sans-IO: fed ``now`` (seconds, any monotonic clock), it returns the entries to relay.

Theory of operation
-------------------
Each client states its own awareness as y-protocols does: ``(client id, clock, JSON)``,
where a higher clock wins and the JSON ``null`` means "gone". The server keeps the latest
state of every client id, with the connection (*owner*) that sent it:

* a client id belongs to the first connection that states it; a connection of another
  member may not overwrite it (no impersonating someone's cursor). Another connection of
  the *same* member takes it over: that is a client reconnecting before the server noticed
  that its old connection died, and it must not be locked out of its own id until the
  old one times out. A connection may hold at most ``max_clients_per_owner`` ids;
* the server writes the admitted user name into every state as ``"member"``, so the name
  others see is the one admission checked, never one the client claims;
* a state must be a JSON object (or ``null``) of at most ``max_state_bytes``;
* a state not renewed for ``timeout_s`` expires, and a connection's states are removed when
  it leaves; both are relayed as removals (clock + 1, ``null``), as y-protocols does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from dataclasses import dataclass

from syncrox.protocol.collab import AwarenessEntry

MEMBER_FIELD = "member"
REMOVED = "null"


@dataclass
class _Held:
    owner: Hashable
    clock: int
    state: str
    updated_at: float


class AwarenessTable:
    def __init__(self, *, timeout_s: float, max_state_bytes: int, max_clients_per_owner: int):
        self.timeout_s = timeout_s
        self.max_state_bytes = max_state_bytes
        self.max_clients_per_owner = max_clients_per_owner
        self._held: dict[int, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def states(self) -> list[AwarenessEntry]:
        """Every current state (what a newcomer is sent)."""
        return [AwarenessEntry(cid, held.clock, held.state) for cid, held in self._held.items()]

    def members(self) -> dict[int, str]:
        """Client id -> member name of every current state."""
        return {cid: _member_of(held.state) for cid, held in self._held.items()}

    def update(
        self, owner: Hashable, member: str, entries: tuple[AwarenessEntry, ...], now: float
    ) -> tuple[list[AwarenessEntry], list[str]]:
        """Apply ``owner``'s entries; return the accepted ones (to relay) and the problems."""
        accepted: list[AwarenessEntry] = []
        problems: list[str] = []
        for entry in entries:
            outcome = self._update_one(owner, member, entry, now)
            if isinstance(outcome, str):
                problems.append(outcome)
            elif outcome is not None:
                accepted.append(outcome)
        return accepted, problems

    def _update_one(
        self, owner: Hashable, member: str, entry: AwarenessEntry, now: float
    ) -> AwarenessEntry | str | None:
        held = self._held.get(entry.client_id)
        if held is not None and held.owner != owner:
            if _member_of(held.state) != member:
                return f"client id {entry.client_id} belongs to another member"
            held.owner = owner  # the same member, reconnected
        state = _normalise(entry.state, member, self.max_state_bytes)
        if state is None:
            return f"awareness state of client {entry.client_id} is not a JSON object"
        if held is None:
            if state == REMOVED:
                return None  # nothing to remove
            if self._count(owner) >= self.max_clients_per_owner:
                return f"at most {self.max_clients_per_owner} awareness client ids per connection"
        elif entry.clock < held.clock or (entry.clock == held.clock and state != REMOVED):
            return None  # stale (y-protocols: the higher clock wins)
        if state == REMOVED:
            del self._held[entry.client_id]
        else:
            self._held[entry.client_id] = _Held(owner, entry.clock, state, now)
        return AwarenessEntry(entry.client_id, entry.clock, state)

    def _count(self, owner: Hashable) -> int:
        return sum(1 for held in self._held.values() if held.owner == owner)

    def remove_owner(self, owner: Hashable) -> list[AwarenessEntry]:
        """Remove every state ``owner`` holds (it left); return the removals to relay."""
        gone = [cid for cid, held in self._held.items() if held.owner == owner]
        return [self._remove(cid) for cid in gone]

    def expire(self, now: float) -> list[AwarenessEntry]:
        """Remove states not renewed for ``timeout_s``; return the removals to relay."""
        stale = [cid for cid, held in self._held.items() if now - held.updated_at >= self.timeout_s]
        return [self._remove(cid) for cid in stale]

    def next_deadline(self) -> float:
        """When the next state expires (``inf`` if none is held)."""
        if not self._held:
            return math.inf
        return min(held.updated_at for held in self._held.values()) + self.timeout_s

    def _remove(self, client_id: int) -> AwarenessEntry:
        held = self._held.pop(client_id)
        return AwarenessEntry(client_id, held.clock + 1, REMOVED)


def _normalise(raw: str, member: str, max_bytes: int) -> str | None:
    """The state as relayed (compact JSON with ``member`` set), ``REMOVED``, or ``None`` if
    it is unacceptable."""
    if len(raw) > max_bytes or len(raw.encode("utf-8")) > max_bytes:
        return None
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    if value is None:
        return REMOVED
    if not isinstance(value, dict):
        return None
    value[MEMBER_FIELD] = member
    # ASCII output: a JSON escape may hold a lone surrogate, which UTF-8 cannot carry.
    # ``allow_nan=False``: a number too large for a float (``1e400``) parses as infinity,
    # which JSON cannot carry either; the state is refused rather than relayed as ``Infinity``.
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: Python-only extensions


def _member_of(state: str) -> str:
    value = json.loads(state)
    name = value.get(MEMBER_FIELD, "") if isinstance(value, dict) else ""
    return name if isinstance(name, str) else ""
