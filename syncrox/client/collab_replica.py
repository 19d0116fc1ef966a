"""A client's replica of one collaborative document. Sans-IO: ``CollabClient`` moves its
bytes; tests drive it directly.

Theory of operation
-------------------
The replica holds two pycrdt documents with the same client id:

* ``main``, the latest state: every remote update is applied here at once;
* ``view``, the state the application last displayed (``view()`` brings it up to date).

A text area reports "the text I showed" -> "the text the user made of it". ``edit`` diffs
the two (``collab_text.diff_text``: few, small replacements) and applies the replacements
to ``view``, where their positions mean what the user meant even if remote edits have
reached ``main`` since. The CRDT update this produces is then applied to ``main`` and
queued for the server. Because CRDT operations refer to neighbouring characters, not to
offsets, the user's edit lands where the user made it and concurrent remote edits
elsewhere survive. Only ``view`` makes local operations, so the two documents never give
one id to two different characters.

Every local change gets a sequence number; the connection records which sequence number
each frame it sends covers, and the server's ``ACK`` moves ``acked_seq`` forward. A local
change is *stored* once ``acked_seq`` reaches it.

Awareness: the replica's own state (cursor, typing, anything the application adds) with
its y-protocols clock, and the peers' states as the server relays them (each with the
``member`` name the server wrote into it).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from typing import Any

from pycrdt import Doc, Text, TransactionEvent

from syncrox.errors import BAD_ARGUMENT, LocalProtocolError, RemoteProtocolError
from syncrox.protocol.collab import BAD_UPDATE, DOC_TOO_LARGE, AwarenessEntry
from syncrox.protocol.collab_doc import TEXT_NAME, is_crdt_panic
from syncrox.protocol.collab_text import TextEdit, diff_text, utf8_offset

DEFAULT_MAX_DOCUMENT_BYTES = 1 << 20
DEFAULT_MAX_UPDATE_BYTES = 2 << 20
# Room for the CRDT metadata of one edit beyond the bytes of its text.
UPDATE_OVERHEAD_BYTES = 1024
MAX_CLIENT_ID = 2**53 - 1
VIEW_RESET = "VIEW_RESET"  # edit() after reset(), before the application called view()


def new_client_id() -> int:
    """A random client id; 0 is reserved for templates."""
    return 1 + secrets.randbelow(MAX_CLIENT_ID)


class Replica:
    def __init__(self, *, client_id: int | None = None) -> None:
        self.max_document_bytes = DEFAULT_MAX_DOCUMENT_BYTES
        self.max_update_bytes = DEFAULT_MAX_UPDATE_BYTES
        self.local_seq = 0  # local changes made so far
        self.acked_seq = 0  # local changes the server has stored
        self.outgoing: list[tuple[int, bytes]] = []  # (seq, update) not yet sent
        self.peers: dict[int, dict[str, Any]] = {}
        self._awareness: dict[str, Any] = {"cursor": None, "typing": False}
        self._awareness_clock = 0
        self._captured: list[bytes] = []
        self.view_reset = False  # reset() emptied the view: the next edit needs a view()
        self._start(client_id or new_client_id())

    def _start(self, client_id: int) -> None:
        self.client_id = client_id
        self._main: Doc[Text] = Doc(client_id=client_id)
        self._main_text = self._main.get(TEXT_NAME, type=Text)
        self._view: Doc[Text] = Doc(client_id=client_id)
        self._view_text = self._view.get(TEXT_NAME, type=Text)
        self._capturing = False
        self._view.observe(self._on_view_commit)

    def _on_view_commit(self, event: TransactionEvent) -> None:
        if self._capturing:
            self._captured.append(event.update)

    def reset(self) -> None:
        """Start over empty, under a new client id: the server refused some of our changes,
        so this replica holds what the server never will. Unsent changes are dropped."""
        self._start(new_client_id())
        self.outgoing.clear()
        self.acked_seq = self.local_seq
        # What the application shows is no longer what edit() would diff against (an
        # empty view): an edit now would re-insert the whole text. It must view() first.
        self.view_reset = True

    # ------------------------------------------------------------------ reading

    @property
    def text(self) -> str:
        """The latest text (with every remote change received so far)."""
        return str(self._main_text)

    def view(self) -> str:
        """Bring the view up to date and return its text: what the application shows, and
        what the next ``edit`` is relative to."""
        missing = self._main.get_update(self._view.get_state())
        self._view.apply_update(missing)
        self.view_reset = False
        return str(self._view_text)

    @property
    def viewed(self) -> str:
        """The view's text as it stands (without catching up)."""
        return str(self._view_text)

    def state_vector(self) -> bytes:
        return self._main.get_state()

    def diff(self, state_vector: bytes) -> bytes:
        try:
            return self._main.get_update(state_vector)
        except ValueError as exc:
            raise RemoteProtocolError(BAD_UPDATE, f"unusable state vector: {exc}") from None

    # ------------------------------------------------------------------ local edits

    def edit(self, new_text: str) -> int:
        """The application turned the viewed text into ``new_text``; return the number of
        replacements that describe it."""
        self._check_view()
        edits = diff_text(self.viewed, new_text)
        self._change(edits)
        return len(edits)

    def _check_view(self) -> None:
        if self.view_reset:
            raise LocalProtocolError(
                VIEW_RESET, "the document was reloaded from the server: view() it, then edit"
            )

    def replace(self, start: int, end: int, text: str) -> None:
        """Replace ``viewed[start:end]`` (code point indices) with ``text``."""
        self._check_view()
        if not 0 <= start <= end <= len(self.viewed):
            raise LocalProtocolError(BAD_ARGUMENT, f"range {start}:{end} is outside the text")
        self._change([TextEdit(start, end, text)])

    def insert(self, index: int, text: str) -> None:
        self.replace(index, index, text)

    def delete(self, start: int, end: int) -> None:
        self.replace(start, end, "")

    def _change(self, edits: list[TextEdit]) -> None:
        if not edits:
            return
        old = self.viewed
        self._check(old, edits)
        self._capturing = True
        try:
            with self._view.transaction():
                for edit in reversed(edits):
                    start, end = utf8_offset(old, edit.start), utf8_offset(old, edit.end)
                    if end > start:
                        del self._view_text[start:end]
                    if edit.text:
                        self._view_text.insert(start, edit.text)
        finally:
            self._capturing = False
        captured, self._captured = self._captured, []
        for update in captured:
            self._main.apply_update(update)
            self.local_seq += 1
            self.outgoing.append((self.local_seq, update))

    def _check(self, old: str, edits: Iterable[TextEdit]) -> None:
        """Refuse here what the server would refuse (so the replica never diverges)."""
        added = removed = 0
        for edit in edits:
            try:
                added += len(edit.text.encode("utf-8"))
            except UnicodeEncodeError:
                raise LocalProtocolError(BAD_ARGUMENT, "text must be valid Unicode") from None
            removed += utf8_offset(old, edit.end) - utf8_offset(old, edit.start)
        size = len(self._main_text) + added - removed
        if added and size > self.max_document_bytes:
            raise LocalProtocolError(
                DOC_TOO_LARGE, f"the text would be {size} bytes; the limit is "
                f"{self.max_document_bytes}",
            )  # fmt: skip
        if added + UPDATE_OVERHEAD_BYTES > self.max_update_bytes:
            raise LocalProtocolError(DOC_TOO_LARGE, "one edit may not insert that much text")

    # ------------------------------------------------------------------ the wire

    def apply_remote(self, update: bytes) -> None:
        """Apply an update from the server (a relay or a sync step 2)."""
        try:
            self._main.apply_update(update)
        except (ValueError, RuntimeError) as exc:
            raise RemoteProtocolError(
                BAD_UPDATE, f"server sent an unusable update: {exc}"
            ) from None
        except BaseException as exc:
            if is_crdt_panic(exc):
                raise RemoteProtocolError(BAD_UPDATE, "the CRDT library failed") from None
            raise

    def take_outgoing(self, max_messages: int, max_bytes: int) -> tuple[list[bytes], int]:
        """Queued updates for one frame (at least one, if any); return them and the seq
        of the last one (what the frame covers)."""
        taken: list[bytes] = []
        size, covered = 0, 0
        while self.outgoing and len(taken) < max_messages:
            seq, update = self.outgoing[0]
            if taken and size + len(update) + 16 > max_bytes:
                break
            self.outgoing.pop(0)
            taken.append(update)
            size += len(update) + 16
            covered = seq
        return taken, covered

    def take_everything(self) -> int:
        """A sync step 2 is about to carry every local change: drop the queue; return the
        seq it covers."""
        self.outgoing.clear()
        return self.local_seq

    # ------------------------------------------------------------------ awareness

    def set_awareness(self, **fields: Any) -> None:
        """Change fields of our awareness state (e.g. ``cursor={"anchor": 3, "head": 5}``)."""
        changed = {**self._awareness, **fields}
        if changed != self._awareness:
            self._awareness = changed
            self._awareness_clock += 1

    @property
    def awareness(self) -> dict[str, Any]:
        return dict(self._awareness)

    def renew_awareness(self) -> AwarenessEntry:
        """Our state under a new clock (y-protocols renews states so they do not expire)."""
        self._awareness_clock += 1
        return self.awareness_entry()

    def awareness_entry(self) -> AwarenessEntry:
        state = json.dumps(self._awareness, separators=(",", ":"))
        return AwarenessEntry(self.client_id, self._awareness_clock, state)

    def apply_awareness(self, entries: Iterable[AwarenessEntry]) -> None:
        for entry in entries:
            if entry.client_id == self.client_id:
                continue
            if entry.removed:
                self.peers.pop(entry.client_id, None)
                continue
            try:
                state = json.loads(entry.state)
            except ValueError:
                continue  # the server normalises states; ignore one that is not JSON
            if isinstance(state, dict):
                self.peers[entry.client_id] = state

    def members(self) -> list[str]:
        """The names of everyone else with this document open (sorted, with repeats for
        someone connected twice)."""
        return sorted(str(state.get("member", "?")) for state in self.peers.values())
