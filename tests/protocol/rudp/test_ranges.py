"""SeqRanges against a plain set of integers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncrox.protocol.rudp.ranges import SeqRanges


def test_add_returns_only_what_is_new_and_merges() -> None:
    ranges = SeqRanges()
    assert ranges.add(10, 12) == [(10, 12)]
    assert ranges.add(20, 20) == [(20, 20)]
    assert ranges.add(5, 25) == [(5, 9), (13, 19), (21, 25)]
    assert len(ranges) == 1
    assert ranges.add(6, 24) == []
    assert ranges.add(26, 27) == [(26, 27)] and len(ranges) == 1  # touching: merged
    assert ranges.add(3, 2) == []
    ranges.discard_below(11)
    assert 10 not in ranges and 11 in ranges and 27 in ranges and 28 not in ranges


operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 60), st.integers(0, 60)),
        st.tuples(st.just("discard_below"), st.integers(0, 60), st.just(0)),
    ),
    max_size=40,
)


@given(operations)
def test_it_behaves_like_a_set(ops: list[tuple[str, int, int]]) -> None:
    ranges, model = SeqRanges(), set[int]()
    for op, a, b in ops:
        if op == "add":
            new = ranges.add(a, b)
            wanted = sorted(set(range(a, b + 1)) - model)
            assert [seq for first, last in new for seq in range(first, last + 1)] == wanted
            model |= set(range(a, b + 1))
        else:
            ranges.discard_below(a)
            model = {seq for seq in model if seq >= a}
        assert all((seq in ranges) == (seq in model) for seq in range(-1, 62))
        assert len(ranges) <= len(model)
