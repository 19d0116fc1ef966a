"""The server's document core: groups, refusals, limits, templates, restore."""

from __future__ import annotations

import pycrdt
import pytest

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.collab import BAD_UPDATE, DOC_TOO_LARGE, LANGUAGES, write_var_uint
from syncrox.protocol.collab_doc import (
    MAX_DELETE_RANGES,
    TEMPLATES,
    TEXT_NAME,
    CrdtFault,
    DocumentCore,
    _Replica,
    is_crdt_panic,
    template_update,
)

LIMITS = {"max_text_bytes": 1000, "max_state_bytes": 4000}


class Writer:
    """A pycrdt replica that records the update of each of its edits."""

    def __init__(self, client_id: int) -> None:
        self.doc: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc(client_id=client_id)
        self.text = self.doc.get(TEXT_NAME, type=pycrdt.Text)
        self.updates: list[bytes] = []
        self.doc.observe(lambda event: self.updates.append(event.update))

    def insert(self, index: int, value: str) -> bytes:
        self.text.insert(index, value)
        return self.updates[-1]

    def delete(self, start: int, end: int) -> bytes:
        del self.text[start:end]
        return self.updates[-1]


def core() -> DocumentCore:
    return DocumentCore(**LIMITS)


def replay(updates: list[bytes]) -> str:
    """The text a fresh replica gets from ``updates`` (what the log would restore)."""
    return DocumentCore.restore(updates, **LIMITS).text


def test_a_group_is_applied_and_emits_exactly_what_integrated() -> None:
    writer, doc = Writer(1), core()
    group = [writer.insert(0, "hello"), writer.insert(5, " world"), writer.delete(0, 1)]
    applied = doc.apply(group)
    assert applied.refusals == ()
    assert doc.text == "ello world"
    assert applied.update is not None and replay([applied.update]) == "ello world"
    # Applying it again changes nothing and emits nothing to store or relay.
    assert doc.apply(group).update is None


def test_garbage_is_refused_and_nothing_of_it_applied() -> None:
    writer, doc = Writer(1), core()
    good = writer.insert(0, "ok")
    applied = doc.apply([b"\x01\x02garbage", good, good[:-3], b""])
    assert [(r.index, r.code) for r in applied.refusals] == [
        (0, BAD_UPDATE),
        (2, BAD_UPDATE),
        (3, BAD_UPDATE),
    ]
    assert doc.text == "ok"
    assert applied.update is not None and replay([applied.update]) == "ok"


def test_an_update_with_missing_dependencies_is_refused_and_forgotten() -> None:
    writer, doc = Writer(1), core()
    first = writer.insert(0, "abc")
    second = writer.insert(3, "def")
    applied = doc.apply([second])
    assert [r.code for r in applied.refusals] == [BAD_UPDATE]
    assert "depends on" in applied.refusals[0].reason
    assert applied.update is None and doc.text == ""
    # The refused update was not parked: its dependency alone brings only itself.
    assert doc.apply([first]).update is not None
    assert doc.text == "abc"


def test_text_limit_refuses_growth_but_allows_shrinking() -> None:
    writer = Writer(1)
    doc = DocumentCore(max_text_bytes=10, max_state_bytes=4000)
    assert doc.apply([writer.insert(0, "é" * 5)]).refusals == ()  # exactly 10 UTF-8 bytes
    refused = doc.apply([writer.insert(0, "x")])
    assert [r.code for r in refused.refusals] == [DOC_TOO_LARGE]
    assert refused.update is None and doc.text == "é" * 5
    # Deleting is always allowed, and a later insert that fits is fine again.
    writer2 = Writer(2)
    writer2.doc.apply_update(doc.encode_state())
    assert doc.apply([writer2.delete(0, 4)]).refusals == ()
    assert doc.text == "é" * 3


def test_state_limit_counts_everything_not_only_the_text() -> None:
    writer = Writer(1)
    doc = DocumentCore(max_text_bytes=1000, max_state_bytes=300)
    other: pycrdt.Doc[pycrdt.Map[str]] = pycrdt.Doc(client_id=2)
    updates: list[bytes] = []
    other.observe(lambda event: updates.append(event.update))
    other.get("junk", type=pycrdt.Map)["k"] = "j" * 400  # not text, still state
    applied = doc.apply([updates[-1]])
    assert [r.code for r in applied.refusals] == [DOC_TOO_LARGE]
    assert doc.measure() < 300
    assert doc.apply([writer.insert(0, "fits")]).refusals == ()


def test_restore_replays_snapshot_and_log_and_rejects_damage() -> None:
    writer = Writer(1)
    writer.doc.apply_update(template_update("c"))
    log = [template_update("c"), writer.insert(0, "// top\n")]
    doc = DocumentCore.restore(log, **LIMITS)
    assert doc.text.startswith("// top\n")
    assert doc.state_bytes == len(doc.encode_state())
    with pytest.raises(ValueError, match="corrupt"):
        DocumentCore.restore([template_update("c"), b"\xff\xff"], **LIMITS)


def test_sync_step_answers_are_exactly_what_the_asker_lacks() -> None:
    writer, doc = Writer(1), core()
    doc.apply([writer.insert(0, "server side")])
    fresh: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc()
    text = fresh.get(TEXT_NAME, type=pycrdt.Text)
    fresh.apply_update(doc.diff(fresh.get_state()))
    assert str(text) == "server side"
    assert doc.diff(doc.state_vector()) == b"\x00\x00"  # nothing missing, nothing deleted
    with pytest.raises(RemoteProtocolError):
        doc.diff(b"\x05\x01")


@pytest.mark.parametrize("language", LANGUAGES)
def test_templates_are_deterministic_and_merge_into_one_copy(language: str) -> None:
    assert template_update(language) == template_update.__wrapped__(language)
    # Two replicas that each created the document from the template, then edited it.
    a, b = Writer(1), Writer(2)
    a.doc.apply_update(template_update(language))
    b.doc.apply_update(template_update(language))
    a.insert(0, "A")
    b.insert(len(b.text), "B")
    a.doc.apply_update(b.doc.get_update(a.doc.get_state()))
    assert str(a.text) == "A" + TEMPLATES[language] + "B"


def test_a_crdt_panic_becomes_a_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    class PanicException(BaseException):  # what pyo3 raises, by name
        pass

    assert is_crdt_panic(PanicException()) and not is_crdt_panic(KeyboardInterrupt())

    def panic(self: pycrdt.Doc[pycrdt.Text], update: bytes) -> None:
        raise PanicException("boom")

    doc, writer = core(), Writer(1)
    updates = [writer.insert(0, "x"), writer.insert(1, "y")]
    monkeypatch.setattr(pycrdt.Doc, "apply_update", panic)
    with pytest.raises(CrdtFault) as caught:
        doc.apply(updates)
    assert caught.value.index == 0
    monkeypatch.setattr(pycrdt.Doc, "apply_update", lambda self, update: None)
    assert _Replica().integrate([(0, b"z")]) == (None, [])


def scattered_deletes(client: int, clocks: range) -> bytes:
    """A delete-only update: one single-character range per clock."""
    ranges = [write_var_uint(clock) + write_var_uint(1) for clock in clocks]
    return bytes([0, 1]) + write_var_uint(client) + write_var_uint(len(ranges)) + b"".join(ranges)


def test_too_many_delete_ranges_at_once_are_refused_before_pycrdt_sees_them() -> None:
    # pycrdt's time for scattered deletes grows faster than their count, on the loop
    # every service shares: one crafted update used to stall the server for 18 s.
    writer = Writer(7)
    core = DocumentCore(max_text_bytes=1 << 20, max_state_bytes=4 << 20)
    assert core.apply([writer.insert(0, "ab" * MAX_DELETE_RANGES)]).refusals == ()
    too_many = scattered_deletes(7, range(0, 2 * MAX_DELETE_RANGES + 2, 2))
    applied = core.apply([too_many])
    assert [r.code for r in applied.refusals] == [BAD_UPDATE]
    assert "too many deletions" in applied.refusals[0].reason
    assert applied.update is None and core.text == "ab" * MAX_DELETE_RANGES
    # Split over two frames, as many go through (and the text loses every "a").
    first = scattered_deletes(7, range(0, MAX_DELETE_RANGES, 2))
    second = scattered_deletes(7, range(MAX_DELETE_RANGES, 2 * MAX_DELETE_RANGES, 2))
    assert core.apply([first]).refusals == () and core.apply([second]).refusals == ()
    assert core.text == "b" * MAX_DELETE_RANGES


def test_the_state_size_estimate_counts_what_deletes_split() -> None:
    # Each delete range may split a run into blocks the encoded state stores apiece: the
    # estimate must stay an upper bound, or the state limit is never checked in time.
    writer = Writer(7)
    core = DocumentCore(max_text_bytes=1 << 20, max_state_bytes=4 << 20)
    core.apply([writer.insert(0, "x" * 20_000)])
    core.apply([scattered_deletes(7, range(1, 20_000, 4))])
    estimate = core.state_bytes
    assert estimate >= core.measure() > 20_000 + 5_000 * 10
