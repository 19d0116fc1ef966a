"""Reading Yjs updates before pycrdt applies them: shapes of real updates, bounded parsing of
garbage, and the dependency rules that keep replicas, snapshots and peers in agreement."""

from __future__ import annotations

import pycrdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.collab import BAD_UPDATE, decode_state_vector, write_var_uint
from syncrox.protocol.collab_doc import DocumentCore
from syncrox.protocol.collab_update import check_dependencies, read_update_shape
from tests.protocol.test_collab_doc import LIMITS, Writer, replay

# Found by fuzzing (fuzz/targets_collab.py collab_update), on top of "hello world\n" by
# client 1. A struct after a gap in client 4's clocks: pycrdt showed its "Q" in the text
# but never emitted it. An item whose two origins are the same: live "hello, world\n",
# rebuilt from a snapshot "hello world\n,".
CLOCK_GAP = bytes.fromhex("01 01 04 01 04 01 04 63 6f 64 65 01 51 00")
SAME_ORIGINS = bytes.fromhex("01 01 08 00 c4 01 05 01 05 01 2c 00")

# ASCII: pycrdt indexes UTF-8 bytes and panics on a position inside a character (the
# client library converts positions; UTF-16 clock counting has its own test below).
ASCII = st.text(st.characters(codec="ascii"), max_size=6)
EDIT = st.tuples(st.integers(0, 2), st.integers(0, 40), st.integers(0, 3), ASCII)


def hello_world() -> tuple[Writer, DocumentCore]:
    writer, doc = Writer(1), DocumentCore(**LIMITS)
    assert doc.apply([writer.insert(0, "hello world\n")]).refusals == ()
    return writer, doc


def edit(writer: Writer, action: tuple[int, int, int, str]) -> bytes | None:
    kind, position, length, value = action
    size = len(writer.text)
    position = min(position, size)
    if kind == 0 and value:
        return writer.insert(position, value)
    if kind == 1 and size > position:
        return writer.delete(position, min(size, position + 1 + length))
    if kind == 2:
        ops: pycrdt.Map[object] = writer.doc.get("meta", type=pycrdt.Map)
        ops[value or "k"] = [position, value, {"n": None, "t": True}, b"\x00"]
        return writer.updates[-1]
    return None


@settings(max_examples=60, deadline=None)
@given(st.lists(EDIT, max_size=25))
def test_the_shape_of_every_real_update_matches_what_pycrdt_says_it_holds(
    actions: list[tuple[int, int, int, str]],
) -> None:
    writer, follower = Writer(7), pycrdt.Doc()
    for action in actions:
        update = edit(writer, action)
        if update is None:
            continue
        shape = read_update_shape(update)
        before = decode_state_vector(follower.get_state())
        follower.apply_update(update)
        after = decode_state_vector(follower.get_state())
        assert shape.ranges == {
            client: (before.get(client, 0), end)
            for client, end in after.items()
            if end != before.get(client, 0)
        }
        assert check_dependencies([shape], before) == [None]
    whole = writer.doc.get_update()
    shape = read_update_shape(whole)
    assert all(start == 0 for start, _ in shape.ranges.values())
    assert check_dependencies([shape], {}) == [None]


def test_strings_count_utf16_code_units_like_yjs() -> None:
    writer = Writer(3)
    update = writer.insert(0, "é😀a")
    assert read_update_shape(update).ranges == {3: (0, 4)}


def test_nested_types_and_their_references_are_read() -> None:
    doc: pycrdt.Doc[pycrdt.Array[object]] = pycrdt.Doc(client_id=6)
    array = doc.get("a", type=pycrdt.Array)
    array.append(pycrdt.Text("hi"))
    shape = read_update_shape(doc.get_update())
    assert shape.ranges == {6: (0, 3)}
    assert (6, 0) in shape.references  # the text's parent is the item holding it


@given(st.binary(max_size=200))
def test_garbage_is_read_or_refused_with_a_protocol_error(data: bytes) -> None:
    try:
        read_update_shape(data)
    except RemoteProtocolError as exc:
        refused = exc
        assert refused.code == BAD_UPDATE


def test_truncations_of_a_real_update_are_all_refused() -> None:
    update = Writer(2).insert(0, "abc")
    for cut in range(len(update)):
        try:
            read_update_shape(update[:cut])
        except RemoteProtocolError:
            continue
        raise AssertionError(f"a cut at {cut} was accepted")


def test_deeply_nested_values_are_refused_not_a_recursion_error() -> None:
    depth = 10_000
    nested = bytes([117, 1]) * depth + bytes([126])  # [[[...null...]]]
    update = bytes([1, 1, 9, 0, 0x08, 1, 1, ord("m"), 1]) + nested + bytes([0])
    with pytest.raises(RemoteProtocolError, match="nested"):
        read_update_shape(update)


def test_a_clock_gap_is_refused_and_leaves_nothing_behind() -> None:
    _, doc = hello_world()
    applied = doc.apply([CLOCK_GAP])
    assert [r.code for r in applied.refusals] == [BAD_UPDATE]
    assert "depends on changes" in applied.refusals[0].reason
    assert applied.update is None
    assert doc.text == "hello world\n"
    assert replay([doc.encode_state()]) == doc.text


def test_an_item_with_the_same_left_and_right_origin_is_refused() -> None:
    _, doc = hello_world()
    applied = doc.apply([SAME_ORIGINS])
    assert [r.code for r in applied.refusals] == [BAD_UPDATE]
    assert "same item" in applied.refusals[0].reason
    assert doc.text == "hello world\n"
    assert replay([doc.encode_state()]) == doc.text


def test_a_delete_of_unseen_changes_is_refused() -> None:
    # What a delete of another client's future text would be: client 9, clocks 0-99.
    update = bytes([0, 1, 9, 1, 0, 100])
    _, doc = hello_world()
    applied = doc.apply([update])
    assert [r.code for r in applied.refusals] == [BAD_UPDATE]
    assert "deletes what this document does not have" in applied.refusals[0].reason
    # The same client then types: the text must stay, here and everywhere.
    typist = Writer(9)
    typist.doc.apply_update(doc.encode_state())
    assert doc.apply([typist.insert(0, ">")]).refusals == ()
    assert doc.text == ">hello world\n"


def test_updates_of_a_group_may_depend_on_earlier_ones_of_that_group() -> None:
    writer, doc = hello_world()
    first, second = writer.insert(0, "a"), writer.insert(1, "b")
    applied = doc.apply([first, second])
    assert applied.refusals == ()
    assert doc.text == "abhello world\n"


def test_what_depends_on_a_refused_update_is_refused_too() -> None:
    writer, doc = hello_world()
    first, second = writer.insert(0, "a"), writer.insert(1, "b")
    applied = doc.apply([first[:-3], second])
    assert [r.index for r in applied.refusals] == [0, 1]
    assert doc.text == "hello world\n"


def test_concurrent_edits_of_two_clients_are_accepted_in_either_order() -> None:
    base = Writer(1)
    base.insert(0, "hello world\n")
    ann, ben = Writer(2), Writer(3)
    for writer in (ann, ben):
        writer.doc.apply_update(base.doc.get_update())
    from_ann, from_ben = ann.insert(0, "A"), ben.insert(5, "B")
    texts = set()
    for order in ([from_ann, from_ben], [from_ben, from_ann]):
        doc = DocumentCore(**LIMITS)
        assert doc.apply([base.doc.get_update()]).refusals == ()
        for update in order:
            assert doc.apply([update]).refusals == ()
        texts.add(doc.text)
    assert texts == {"AhelloB world\n"}


def test_after_pycrdt_refuses_one_the_rest_are_read_again() -> None:
    # Well-formed for our reader, refused by pycrdt: a type of unknown kind (99).
    unknown_type = bytes([1, 1, 9, 0, 0x07, 1, 1, ord("m"), 99, 0])
    # Then client 9 continues at clock 1, as if the first had applied: now a gap.
    follower = bytes([1, 1, 9, 1, 0x04, 1, 1, ord("m"), 1, ord("x"), 0])
    writer, doc = hello_world()
    independent = writer.insert(0, ">")  # depends on nothing the refused one brought
    applied = doc.apply([unknown_type, follower, independent])
    assert [r.index for r in applied.refusals] == [0, 1]
    assert "does not have" in applied.refusals[1].reason
    assert doc.text == ">hello world\n"  # a valid edit is never refused for a neighbour
    assert applied.update is not None
    assert replay([doc.encode_state()]) == doc.text


BEYOND_32_BITS = write_var_uint(2**32 + 1)


@pytest.mark.parametrize(
    "update",
    [
        # One client, one GC struct of length 2^32 + 1 (yrs would read it as length 1).
        bytes([1, 1, 5, 0, 0]) + BEYOND_32_BITS + bytes([0]),
        # A struct starting at a clock beyond 32 bits.
        bytes([1, 1, 5]) + BEYOND_32_BITS + bytes([0, 1, 0]),
        # An item whose origin's clock is beyond 32 bits.
        bytes([1, 1, 5, 0, 0x84, 0]) + BEYOND_32_BITS + bytes([1, ord("x"), 0]),
        # A delete range reaching beyond 32 bits.
        bytes([0, 1, 9, 1, 0]) + BEYOND_32_BITS,
    ],
)
def test_clocks_and_lengths_beyond_32_bits_are_refused(update: bytes) -> None:
    # yrs keeps them in 32 bits and cuts them silently: replicas and the server then held
    # different texts under equal state vectors, for good.
    with pytest.raises(RemoteProtocolError, match="beyond 32 bits"):
        read_update_shape(update)
