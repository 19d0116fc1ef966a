"""One collaborative document as the server holds it: a pycrdt ``Doc`` with one ``Text``.
Sans-IO: no Trio, no sockets, no clock; the service feeds it updates and persists what it
returns.

Theory of operation
-------------------
* **Groups.** The service applies the updates one client sent in one batch as a *group*, in
  one pycrdt transaction (a transaction per update costs ~10x more). The transaction emits
  one update holding exactly what was integrated: that, not the client's bytes, is what gets
  persisted and relayed, so nothing the document did not accept can reach the log or
  another client.
* **Refusals.** Every update is read before pycrdt sees it (``collab_update``): one that
  is malformed, or depends on changes this document lacks, or would leave a gap in a
  client's clocks, or deletes what the document has not seen, is refused and nothing of it
  is applied. pycrdt would otherwise keep such structs "pending" or, worse, integrate some
  of them into the text without ever emitting them, so that this replica, its snapshot and
  its peers disagree. What pycrdt itself cannot decode is refused as well (our reader
  does not check everything pycrdt's decoder does, e.g. the JSON inside an embed); the
  group's later updates, admitted on the premise that it would apply, are then read again
  against what the document holds, so a valid edit is never refused for its neighbour.
* **Limits.** The text (UTF-8 bytes) and the encoded state of the whole document (which
  also counts history and any other root types a client might add) are bounded. An
  update's bytes bound what it can add, so far from the limits a group is applied directly;
  near them it is tried on a copy first and applied only if the copy stays within bounds.
  The copy is only a trial: a replica rebuilt from an encoded state is not guaranteed to
  order every item as the live one does, so the live replica is never replaced by one.
* **Faults.** pycrdt surfaces a Rust panic as a ``BaseException``; it is turned into
  ``CrdtFault`` (the document must then be reloaded from the store, see the service).
* **Templates.** A new document starts with its language's template, written by the
  reserved client id 0 at clock 0: the template update is a pure function of the language,
  so even if two replicas created it independently, they would hold the *same* CRDT items
  and the text would appear once.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pycrdt import Doc, Text, TransactionEvent, merge_updates

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.collab import BAD_MESSAGE, BAD_UPDATE, DOC_TOO_LARGE, decode_state_vector
from syncrox.protocol.collab_update import (
    TooManyDeletes,
    check_dependencies,
    read_update_shape,
)

TEXT_NAME = "code"
TEMPLATE_CLIENT_ID = 0
# pycrdt's time to apply scattered deletes grows faster than their count (measured on a
# 500 000-character text: 1 000 ranges 24 ms, 16 384 ranges 0.34 s, 65 536 ranges 2.4 s),
# and it runs on the event loop every service shares: updates applied together (a
# client's frame) may hold at most this many delete ranges in all. A select-all delete
# of a document edited by many hands stays well within; beyond, the update is refused
# (BAD_UPDATE) and nothing of it is applied.
MAX_DELETE_RANGES = 16_384
_TOO_MANY_DELETES = f"too many deletions at once (at most {MAX_DELETE_RANGES} ranges together)"
# Each delete range may split a block, which the encoded state then stores on its own
# (measured ~15 bytes a range); the size estimate counts twice that.
STATE_BYTES_PER_DELETE_RANGE = 32

TEMPLATES = {
    "python": (
        "# Collaborative Python file: everyone in the room edits it together.\n"
        "\n"
        "\n"
        "def main() -> None:\n"
        '    print("Hello from SyncroX!")\n'
        "\n"
        "\n"
        'if __name__ == "__main__":\n'
        "    main()\n"
    ),
    "c": (
        "/* Collaborative C file: everyone in the room edits it together. */\n"
        "#include <stdio.h>\n"
        "\n"
        "int main(void) {\n"
        '    printf("Hello from SyncroX!\\n");\n'
        "    return 0;\n"
        "}\n"
    ),
    "cpp": (
        "// Collaborative C++ file: everyone in the room edits it together.\n"
        "#include <iostream>\n"
        "\n"
        "int main() {\n"
        '    std::cout << "Hello from SyncroX!" << std::endl;\n'
        "    return 0;\n"
        "}\n"
    ),
    "java": (
        "// Collaborative Java file: everyone in the room edits it together.\n"
        "public class Main {\n"
        "    public static void main(String[] args) {\n"
        '        System.out.println("Hello from SyncroX!");\n'
        "    }\n"
        "}\n"
    ),
}


class CrdtFault(Exception):
    """pycrdt panicked; the document object can no longer be trusted."""

    def __init__(self, index: int) -> None:
        super().__init__(f"the CRDT library failed on update {index}")
        self.index = index


@dataclass(frozen=True)
class Refusal:
    """Update ``index`` of a group was not applied."""

    index: int
    code: str
    reason: str


@dataclass(frozen=True)
class Applied:
    """The outcome of a group: what was integrated (to persist and relay), what was not."""

    update: bytes | None
    refusals: tuple[Refusal, ...] = ()


@functools.cache
def template_update(language: str) -> bytes:
    """The deterministic update that writes ``language``'s template into an empty document."""
    doc: Doc[Text] = Doc(client_id=TEMPLATE_CLIENT_ID)
    doc.get(TEXT_NAME, type=Text).insert(0, TEMPLATES[language])
    return doc.get_update()


def is_crdt_panic(exc: BaseException) -> bool:
    """pyo3 raises ``PanicException``, a ``BaseException`` not importable by name."""
    return type(exc).__name__ == "PanicException"


class _Replica:
    """A ``Doc`` with its text and the updates its transactions emitted."""

    def __init__(self) -> None:
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.emitted: list[bytes] = []
        self.doc.observe(self._on_commit)

    def _on_commit(self, event: TransactionEvent) -> None:
        self.emitted.append(event.update)

    def integrate(
        self, updates: Sequence[tuple[int, bytes]]
    ) -> tuple[Refusal | None, list[tuple[int, bytes]]]:
        """Apply the ``(index, update)`` pairs in one transaction until pycrdt refuses one
        (it decodes an update whole before integrating any of it, so a refused update
        changed nothing). Returns that refusal, or ``None``, and the pairs not tried."""
        current = 0
        try:
            with self.doc.transaction():
                for position, (current, update) in enumerate(updates):
                    try:
                        self.doc.apply_update(update)
                    except (ValueError, RuntimeError) as exc:
                        refusal = Refusal(current, BAD_UPDATE, _reason(exc))
                        return refusal, list(updates[position + 1 :])
        except BaseException as exc:
            if is_crdt_panic(exc):
                raise CrdtFault(current) from None
            raise
        return None, []

    def integrate_admitted(self, admitted: Sequence[tuple[int, bytes]]) -> list[Refusal]:
        """Apply admitted updates in order; return the refusals. When pycrdt refuses one,
        the rest were admitted on the premise that it would apply: they are read again
        against what the document now holds, and those that still may go on."""
        refusals: list[Refusal] = []
        pending = list(admitted)
        while pending:
            refused, rest = self.integrate(pending)
            if refused is None:
                break
            refusals.append(refused)
            again, refused_again, _ = self.admissible([update for _, update in rest])
            indices = [index for index, _ in rest]
            refusals += [replace(r, index=indices[r.index]) for r in refused_again]
            pending = [(indices[position], update) for position, update in again]
        return refusals

    def admissible(
        self, updates: Sequence[bytes]
    ) -> tuple[list[tuple[int, bytes]], list[Refusal], int]:
        """The updates that may be applied in order, with their indices, the refusals of
        the others (see ``collab_update``), and how many delete ranges the admitted hold."""
        refusals: list[Refusal] = []
        shapes = []
        delete_ranges = 0
        for index, update in enumerate(updates):
            try:
                shape = read_update_shape(update, MAX_DELETE_RANGES - delete_ranges)
            except TooManyDeletes:
                refusals.append(Refusal(index, BAD_UPDATE, _TOO_MANY_DELETES))
                continue  # what depends on it is refused below, as for any refusal
            except RemoteProtocolError as exc:
                refusals.append(Refusal(index, BAD_UPDATE, exc.message))
                continue
            delete_ranges += len(shape.deletes)
            shapes.append((index, shape))
        known = decode_state_vector(self.doc.get_state())
        verdicts = check_dependencies([shape for _, shape in shapes], known)
        admitted = []
        for (index, shape), verdict in zip(shapes, verdicts, strict=True):
            if verdict is None:
                admitted.append((index, updates[index]))
            else:
                refusals.append(Refusal(index, BAD_UPDATE, verdict))
                delete_ranges -= len(shape.deletes)
        return admitted, refusals, delete_ranges

    def take_emitted(self) -> bytes | None:
        emitted, self.emitted = self.emitted, []
        if not emitted:
            return None
        return emitted[0] if len(emitted) == 1 else merge_updates(*emitted)


def _copy(replica: _Replica) -> _Replica:
    """A new replica holding ``replica``'s encoded state (for a trial, see the docstring)."""
    fresh = _Replica()
    fresh.integrate([(0, replica.doc.get_update())])
    fresh.take_emitted()
    return fresh


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


class DocumentCore:
    def __init__(self, *, max_text_bytes: int, max_state_bytes: int) -> None:
        self.max_text_bytes = max_text_bytes
        self.max_state_bytes = max_state_bytes
        self._replica = _Replica()
        # Size of the encoded state: exact after ``encode_state``/``measure``, otherwise an
        # upper bound (the last exact value plus everything integrated since).
        self._state_bytes = 0

    @classmethod
    def restore(
        cls, updates: Iterable[bytes], *, max_text_bytes: int, max_state_bytes: int
    ) -> DocumentCore:
        """Rebuild a document from its stored snapshot and log. Stored bytes that no longer
        apply raise ``ValueError`` (the store is damaged)."""
        core = cls(max_text_bytes=max_text_bytes, max_state_bytes=max_state_bytes)
        refused, _ = core._replica.integrate(list(enumerate(updates)))
        if refused is not None:
            raise ValueError(f"stored update {refused.index} is corrupt: {refused.reason}")
        core._replica.take_emitted()
        core.measure()
        return core

    # ------------------------------------------------------------------ reading

    @property
    def text(self) -> str:
        return str(self._replica.text)

    @property
    def text_bytes(self) -> int:
        return len(self._replica.text)  # pycrdt counts UTF-8 bytes

    @property
    def state_bytes(self) -> int:
        return self._state_bytes

    def state_vector(self) -> bytes:
        return self._replica.doc.get_state()

    def diff(self, state_vector: bytes) -> bytes:
        """Everything a replica with ``state_vector`` lacks (a sync step 2 payload)."""
        try:
            return self._replica.doc.get_update(state_vector)
        except ValueError as exc:
            raise RemoteProtocolError(
                BAD_MESSAGE, f"unusable state vector: {_reason(exc)}"
            ) from None

    def encode_state(self) -> bytes:
        """The whole document as one update (a snapshot)."""
        state = self._replica.doc.get_update()
        self._state_bytes = len(state)
        return state

    def measure(self) -> int:
        return len(self.encode_state())

    # ------------------------------------------------------------------ writing

    def apply(self, updates: Sequence[bytes]) -> Applied:
        """Apply one client's group of updates; see the module docstring."""
        if not updates:
            return Applied(None)
        admitted, refused, delete_ranges = self._replica.admissible(updates)
        growth = sum(len(update) for _, update in admitted)
        # A delete range can split a run of text into separate blocks, which the encoded
        # state then holds apiece: the state's estimate counts that too.
        splits = delete_ranges * STATE_BYTES_PER_DELETE_RANGE
        if self.text_bytes + growth > self.max_text_bytes or (
            self._state_bytes + growth + splits > self.max_state_bytes
            and self.measure() + growth + splits > self.max_state_bytes
        ):
            too_large = self._beyond_limits(admitted)
            if too_large is not None:
                return Applied(None, tuple(sorted([*refused, *too_large], key=lambda r: r.index)))
        refused += self._replica.integrate_admitted(admitted)
        update = self._replica.take_emitted()
        if update is not None:
            self._state_bytes += len(update) + splits
        return Applied(update, tuple(sorted(refused, key=lambda refusal: refusal.index)))

    def _beyond_limits(self, admitted: list[tuple[int, bytes]]) -> list[Refusal] | None:
        """Try ``admitted`` on a copy: refusals for all of them if the document would grow
        beyond a limit, else ``None``."""
        trial = _copy(self._replica)
        trial.integrate_admitted(admitted)
        after_text = len(trial.text)
        after_state = len(trial.doc.get_update())
        if not (
            (after_text > self.max_text_bytes and after_text > self.text_bytes)
            or (after_state > self.max_state_bytes and after_state > self.measure())
        ):
            return None
        reason = (
            f"the document would hold {after_text} bytes of text and {after_state} bytes "
            f"of state; the limits are {self.max_text_bytes} and {self.max_state_bytes}"
        )
        return [Refusal(index, DOC_TOO_LARGE, reason) for index, _ in admitted]
