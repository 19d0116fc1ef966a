"""Plain-text edits for the collaborative editor: a text area's "old text -> new text" turned
into the few, small replacements that explain it. Sans-IO, pure functions.

Why minimal edits matter: a CRDT keeps concurrent edits to *different* characters apart, but
only if each side touches no more characters than it really changed. Replacing a whole line
(or the whole text) to change one character would delete, and re-insert as new characters,
text someone else was editing at the same moment; their edit would then land in deleted text
and vanish from view. So the diff keeps every unchanged run of characters as it is.

Method: strip the common prefix and suffix (one typing or paste action is then one edit,
found in linear time); if the changed middle is small, diff it character by character;
otherwise diff it line by line and refine each changed block of lines character by
character when that block is small. ``difflib`` is quadratic in the worst case, so the
character-level pass is bounded by ``MAX_CHAR_DIFF_CELLS`` (product of the two lengths).

Positions are Python string indices (code points). pycrdt's ``Text`` counts UTF-8 bytes
instead (and a position inside a character corrupts the edit), so ``utf8_offset``
translates before anything reaches the document.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

MAX_CHAR_DIFF_CELLS = 250_000


@dataclass(frozen=True)
class TextEdit:
    """Replace ``old[start:end]`` (code point indices into the old text) with ``text``."""

    start: int
    end: int
    text: str


def diff_text(old: str, new: str) -> list[TextEdit]:
    """Edits, in increasing position order and not overlapping, that turn ``old`` into
    ``new``; apply them from the last to the first (see ``apply_edits``)."""
    if old == new:
        return []
    prefix = _common_prefix(old, new)
    suffix = _common_suffix(old, new, prefix)
    old_mid = old[prefix : len(old) - suffix]
    new_mid = new[prefix : len(new) - suffix]
    if not old_mid or not new_mid:
        return [TextEdit(prefix, prefix + len(old_mid), new_mid)]
    if len(old_mid) * len(new_mid) <= MAX_CHAR_DIFF_CELLS:
        return _char_edits(old_mid, new_mid, prefix)
    return _line_edits(old_mid, new_mid, prefix)


def apply_edits(text: str, edits: list[TextEdit]) -> str:
    """What a document does with ``edits`` (used by tests and as the reference semantics)."""
    for edit in reversed(edits):
        text = text[: edit.start] + edit.text + text[edit.end :]
    return text


def utf8_offset(text: str, index: int) -> int:
    """The UTF-8 byte offset of code point ``index`` in ``text``."""
    if text.isascii():
        return index
    return len(text[:index].encode("utf-8"))


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    low, high = 0, limit
    # Binary search on slice equality: each comparison runs in C, so this is fast even
    # for long texts where a character-by-character Python loop would not be.
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _common_suffix(a: str, b: str, prefix: int) -> int:
    limit = min(len(a), len(b)) - prefix
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            low = mid
        else:
            high = mid - 1
    return low


def _char_edits(old: str, new: str, base: int) -> list[TextEdit]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [
        TextEdit(base + i1, base + i2, new[j1:j2])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def _line_edits(old: str, new: str, base: int) -> list[TextEdit]:
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    old_starts = _starts(old_lines)
    new_starts = _starts(new_lines)
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    edits: list[TextEdit] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        old_block = old[old_starts[i1] : old_starts[i2]]
        new_block = new[new_starts[j1] : new_starts[j2]]
        start = base + old_starts[i1]
        if old_block and new_block and len(old_block) * len(new_block) <= MAX_CHAR_DIFF_CELLS:
            edits += _char_edits(old_block, new_block, start)
        else:
            edits.append(TextEdit(start, start + len(old_block), new_block))
    return edits


def _starts(lines: list[str]) -> list[int]:
    """Offsets of each line's start, plus the total length at the end."""
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    return starts
