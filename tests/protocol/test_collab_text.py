"""Plain-text diffs for the editor: correct, small, and careful with UTF-8 offsets."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from syncrox.protocol.collab_text import (
    MAX_CHAR_DIFF_CELLS,
    TextEdit,
    apply_edits,
    diff_text,
    utf8_offset,
)

TEXTS = st.text(alphabet=st.sampled_from("ab \néé😀x"), max_size=60)


@given(TEXTS, TEXTS)
def test_edits_turn_old_into_new(old: str, new: str) -> None:
    edits = diff_text(old, new)
    assert apply_edits(old, edits) == new
    # Sorted, non-overlapping, each a real change.
    for first, second in itertools.pairwise(edits):
        assert first.end <= second.start
    assert all(edit.start < edit.end or edit.text for edit in edits)


@given(TEXTS, st.data())
def test_one_typing_action_is_one_edit_touching_only_what_changed(
    old: str, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(old)))
    end = data.draw(st.integers(start, len(old)))
    inserted = data.draw(st.text(alphabet="XYZ", max_size=5))
    new = old[:start] + inserted + old[end:]
    edits = diff_text(old, new)
    assert apply_edits(old, edits) == new
    if old != new:
        assert len(edits) == 1
        (edit,) = edits
        # Never more than the replaced span (the diff may find a smaller one).
        assert edit.end - edit.start <= end - start
        assert len(edit.text) <= len(inserted)


def test_changes_in_two_places_stay_two_small_edits() -> None:
    old = "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
    new = old.replace("return 1", "return 10").replace("def b", "def bee")
    edits = diff_text(old, new)
    assert edits == [TextEdit(21, 21, "0"), TextEdit(29, 29, "ee")]


def test_large_texts_are_diffed_by_line_and_keep_unchanged_lines() -> None:
    lines = [f"line {i} " + "x" * 40 + "\n" for i in range(400)]
    old = "".join(lines)
    changed = list(lines)
    changed[10] = "line 10 CHANGED\n"
    changed[390] = "line 390 CHANGED\n"
    new = "".join(changed)
    assert len(old) ** 2 > MAX_CHAR_DIFF_CELLS  # the line-level path is taken
    edits = diff_text(old, new)
    assert apply_edits(old, edits) == new
    touched = sum(edit.end - edit.start for edit in edits)
    assert touched <= 2 * len(lines[10])  # only the two changed lines, not the middle


def test_utf8_offsets() -> None:
    text = "aé😀b"
    assert [utf8_offset(text, i) for i in range(5)] == [0, 1, 3, 7, 8]
    assert utf8_offset("plain", 3) == 3
