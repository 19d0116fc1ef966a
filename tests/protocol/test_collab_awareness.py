"""Server-side awareness: ownership, clocks, the member name, validation, expiry."""

from __future__ import annotations

import json
import math

import pytest

from syncrox.protocol.collab import AwarenessEntry
from syncrox.protocol.collab_awareness import AwarenessTable


def table() -> AwarenessTable:
    return AwarenessTable(timeout_s=30.0, max_state_bytes=200, max_clients_per_owner=2)


def state(entry: AwarenessEntry) -> dict[str, object]:
    value = json.loads(entry.state)
    assert isinstance(value, dict)
    return value


def test_states_carry_the_admitted_name_not_the_claimed_one() -> None:
    aw = table()
    claimed = AwarenessEntry(7, 1, '{"member":"mallory","cursor":{"anchor":1,"head":1}}')
    accepted, problems = aw.update("conn-a", "alice", (claimed,), now=0.0)
    assert problems == []
    assert state(accepted[0]) == {"member": "alice", "cursor": {"anchor": 1, "head": 1}}
    assert aw.members() == {7: "alice"}
    assert aw.states() == accepted


def test_higher_clock_wins_and_stale_updates_are_dropped() -> None:
    aw = table()
    aw.update("a", "alice", (AwarenessEntry(7, 5, '{"typing":true}'),), now=0.0)
    accepted, _ = aw.update("a", "alice", (AwarenessEntry(7, 4, '{"typing":false}'),), now=1.0)
    assert accepted == [] and state(aw.states()[0])["typing"] is True
    accepted, _ = aw.update("a", "alice", (AwarenessEntry(7, 6, '{"typing":false}'),), now=1.0)
    assert state(accepted[0])["typing"] is False


def test_a_client_id_belongs_to_its_first_connection() -> None:
    aw = table()
    aw.update("a", "alice", (AwarenessEntry(7, 1, "{}"),), now=0.0)
    accepted, problems = aw.update("b", "bob", (AwarenessEntry(7, 9, '{"x":1}'),), now=0.0)
    assert accepted == [] and "another member" in problems[0]
    accepted, problems = aw.update("b", "bob", (AwarenessEntry(7, 9, "null"),), now=0.0)
    assert accepted == [] and len(aw) == 1


def test_the_same_member_reconnected_takes_its_client_id_over() -> None:
    aw = table()
    aw.update("old", "alice", (AwarenessEntry(7, 1, '{"typing":true}'),), now=0.0)
    accepted, problems = aw.update("new", "alice", (AwarenessEntry(7, 2, "{}"),), now=1.0)
    assert problems == [] and [entry.clock for entry in accepted] == [2]
    # The old connection's end no longer removes the state the new one holds.
    assert aw.remove_owner("old") == []
    assert [entry.client_id for entry in aw.remove_owner("new")] == [7]


def test_a_connection_holds_a_bounded_number_of_client_ids() -> None:
    aw = table()
    entries = tuple(AwarenessEntry(cid, 1, "{}") for cid in (1, 2, 3))
    accepted, problems = aw.update("a", "alice", entries, now=0.0)
    assert [entry.client_id for entry in accepted] == [1, 2]
    assert problems == ["at most 2 awareness client ids per connection"]


@pytest.mark.parametrize(
    "raw",
    ["[1,2]", '"text"', "{bad json", '{"x":NaN}', '{"x":Infinity}', "[" * 150 + "]" * 150,
     '{"pad":"' + "x" * 300 + '"}'],
)  # fmt: skip
def test_unacceptable_states_are_refused(raw: str) -> None:
    accepted, problems = table().update("a", "alice", (AwarenessEntry(1, 1, raw),), now=0.0)
    assert accepted == [] and problems


def test_deep_nesting_does_not_crash() -> None:
    aw = AwarenessTable(timeout_s=30.0, max_state_bytes=100_000, max_clients_per_owner=2)
    deep = "[" * 50_000 + "]" * 50_000  # valid JSON, far deeper than Python recurses
    accepted, problems = aw.update("a", "x", (AwarenessEntry(1, 1, deep),), now=0.0)
    assert accepted == [] and problems


def test_removal_by_the_owner_and_when_it_leaves() -> None:
    aw = table()
    aw.update("a", "alice", (AwarenessEntry(1, 3, "{}"), AwarenessEntry(2, 1, "{}")), now=0.0)
    accepted, _ = aw.update("a", "alice", (AwarenessEntry(1, 3, "null"),), now=1.0)
    assert accepted == [AwarenessEntry(1, 3, "null")]
    assert aw.remove_owner("a") == [AwarenessEntry(2, 2, "null")]
    assert len(aw) == 0 and aw.remove_owner("a") == []


def test_states_not_renewed_expire() -> None:
    aw = table()
    assert aw.next_deadline() == math.inf
    aw.update("a", "alice", (AwarenessEntry(1, 1, "{}"),), now=0.0)
    aw.update("b", "bob", (AwarenessEntry(2, 1, "{}"),), now=10.0)
    assert aw.next_deadline() == 30.0
    assert aw.expire(29.9) == []
    assert aw.expire(30.0) == [AwarenessEntry(1, 2, "null")]
    aw.update("b", "bob", (AwarenessEntry(2, 2, "{}"),), now=35.0)  # renewed
    assert aw.expire(41.0) == [] and aw.next_deadline() == 65.0
