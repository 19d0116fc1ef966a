"""The client's replica, without sockets: edits relative to what the user saw, remote
updates, offsets in UTF-8, local limits, acknowledgement bookkeeping, awareness."""

from __future__ import annotations

import pytest

from syncrox.client.collab_replica import VIEW_RESET, Replica
from syncrox.errors import LocalProtocolError
from syncrox.protocol.collab import DOC_TOO_LARGE, AwarenessEntry


def exchange(*replicas: Replica) -> None:
    """Deliver everything each replica made to every other (a perfect network)."""
    for sender in replicas:
        for receiver in replicas:
            if receiver is not sender:
                receiver.apply_remote(sender.diff(receiver.state_vector()))


def pair(text: str) -> tuple[Replica, Replica]:
    a, b = Replica(client_id=1), Replica(client_id=2)
    a.view()
    a.edit(text)
    exchange(a, b)
    assert b.view() == text
    return a, b


def test_an_edit_is_relative_to_the_view_and_keeps_remote_edits_elsewhere() -> None:
    a, b = pair("first line\nsecond line\n")
    shown = a.view()
    b.edit(b.view().replace("second", "2nd"))
    exchange(b, a)  # reaches a's latest state, not what a's user is looking at
    assert a.viewed == shown
    a.edit(shown.replace("first", "1st"))
    assert a.text == "1st line\n2nd line\n"
    exchange(a, b)
    assert a.text == b.text == "1st line\n2nd line\n"


def test_a_stale_view_does_not_resurrect_text_deleted_concurrently() -> None:
    a, b = pair("abc")
    shown = a.view()
    b.delete(1, 2)  # b deletes "b"
    exchange(b, a)
    a.edit(shown + "d")  # a's user appended "d" to the "abc" they saw
    exchange(a, b)
    assert a.text == b.text == "acd"


def test_positions_are_code_points_even_with_multibyte_text() -> None:
    a, b = pair("aé😀b")
    a.view()
    a.insert(3, "X")  # after the emoji
    a.replace(1, 2, "e")
    exchange(a, b)
    assert b.view() == "ae😀Xb"
    b.delete(2, 3)
    assert b.viewed == "aeXb"


def test_local_limits_refuse_before_anything_is_applied() -> None:
    replica = Replica(client_id=1)
    replica.max_document_bytes = 10
    replica.view()
    replica.insert(0, "é" * 5)
    with pytest.raises(LocalProtocolError) as caught:
        replica.insert(0, "x")
    assert caught.value.code == DOC_TOO_LARGE
    with pytest.raises(LocalProtocolError):
        replica.insert(0, "\ud800")  # a lone surrogate cannot be sent
    with pytest.raises(LocalProtocolError):
        replica.replace(3, 99, "")
    replica.delete(0, 2)  # deleting is always possible
    assert replica.text == "é" * 3 and replica.local_seq == 2


def test_outgoing_updates_are_batched_and_numbered() -> None:
    replica = Replica(client_id=1)
    replica.view()
    for index in range(5):
        replica.insert(index, "x")
    assert replica.local_seq == 5
    updates, covers = replica.take_outgoing(max_messages=2, max_bytes=10_000)
    assert len(updates) == 2 and covers == 2
    updates, covers = replica.take_outgoing(max_messages=10, max_bytes=1)
    assert len(updates) == 1 and covers == 3  # at least one, even if over the byte budget
    assert replica.take_everything() == 5 and replica.outgoing == []


def test_reset_starts_over_under_a_new_client_id() -> None:
    replica = Replica(client_id=1)
    replica.view()
    replica.insert(0, "refused")
    replica.reset()
    assert replica.client_id != 1 and replica.text == "" and replica.outgoing == []
    assert replica.acked_seq == replica.local_seq == 1


def test_awareness_of_self_and_peers() -> None:
    replica = Replica(client_id=1)
    first = replica.awareness_entry()
    replica.set_awareness(cursor={"anchor": 1, "head": 2})
    replica.set_awareness(cursor={"anchor": 1, "head": 2})  # no change, no new clock
    assert replica.awareness_entry().clock == first.clock + 1
    assert replica.renew_awareness().clock == first.clock + 2
    replica.apply_awareness(
        [
            AwarenessEntry(1, 9, '{"member":"me"}'),  # our own id: ignored
            AwarenessEntry(5, 1, '{"member":"bob","typing":true}'),
            AwarenessEntry(6, 1, '{"member":"amy"}'),
            AwarenessEntry(7, 1, "not json"),
        ]
    )
    assert replica.members() == ["amy", "bob"]
    replica.apply_awareness([AwarenessEntry(5, 2, "null")])
    assert replica.members() == ["amy"]


def test_after_a_reset_an_edit_needs_a_fresh_view() -> None:
    # The view is empty after a reset; an edit of what the application still shows
    # would have re-inserted the whole text (the server then held it twice).
    replica = Replica(client_id=5)
    replica.edit("hello")
    replica.reset()
    with pytest.raises(LocalProtocolError) as stale:
        replica.edit("hello!")
    assert stale.value.code == VIEW_RESET
    with pytest.raises(LocalProtocolError):
        replica.replace(0, 0, ">")
    assert replica.view() == ""  # what the server holds, once synced: here nothing
    replica.edit("fresh")
    assert replica.text == "fresh"
