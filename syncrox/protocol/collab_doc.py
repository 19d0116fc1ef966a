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
* **Refusals.** An update pycrdt cannot decode is refused and nothing of it is applied
  (decoding precedes integration). An update that decodes but depends on changes this
  document lacks would be parked by pycrdt as "pending" forever; it is detected (the part
  of it the document still lacks after the transaction is not empty), refused, and the
  document is rebuilt from its integrated state, which drops the parked structs.
* **Limits.** The text (UTF-8 bytes) and the encoded state of the whole document (which
  also counts history and any other root types a client might add) are bounded. An
  update's bytes bound what it can add, so far from the limits a group is applied directly;
  near them it is applied to a copy first and kept only if the copy is within bounds.
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
from dataclasses import dataclass

from pycrdt import Doc, Text, TransactionEvent, get_update, merge_updates

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.collab import BAD_MESSAGE, BAD_UPDATE, DOC_TOO_LARGE

TEXT_NAME = "code"
TEMPLATE_CLIENT_ID = 0
_NOTHING_MISSING = b"\x00"  # an update's struct section with no clients: nothing missing

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

    def integrate(self, updates: Sequence[bytes]) -> tuple[list[int], list[Refusal]]:
        """Apply ``updates`` in one transaction; return accepted indices and refusals."""
        accepted: list[int] = []
        refusals: list[Refusal] = []
        current = 0
        try:
            with self.doc.transaction():
                for current, update in enumerate(updates):
                    try:
                        self.doc.apply_update(update)
                    except (ValueError, RuntimeError) as exc:
                        refusals.append(Refusal(current, BAD_UPDATE, _reason(exc)))
                    else:
                        accepted.append(current)
        except BaseException as exc:
            if is_crdt_panic(exc):
                raise CrdtFault(current) from None
            raise
        return accepted, refusals

    def take_emitted(self) -> bytes | None:
        emitted, self.emitted = self.emitted, []
        if not emitted:
            return None
        return emitted[0] if len(emitted) == 1 else merge_updates(*emitted)


def _rebuilt(replica: _Replica) -> _Replica:
    """A new replica holding ``replica``'s integrated state (not its pending structs)."""
    fresh = _Replica()
    fresh.integrate([replica.doc.get_update()])
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
        stored = list(updates)
        _, refusals = core._replica.integrate(stored)
        if refusals:
            raise ValueError(f"stored update {refusals[0].index} is corrupt: {refusals[0].reason}")
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
        growth = sum(len(update) for update in updates)
        if self.text_bytes + growth > self.max_text_bytes or (
            self._state_bytes + growth > self.max_state_bytes
            and self.measure() + growth > self.max_state_bytes
        ):
            return self._apply_near_limits(updates)
        applied, self._replica = self._apply_to(self._replica, updates)
        if applied.update is not None:
            self._state_bytes += len(applied.update)
        return applied

    def _apply_to(self, replica: _Replica, updates: Sequence[bytes]) -> tuple[Applied, _Replica]:
        """Apply to ``replica``; return the outcome and the replica to keep (a rebuilt one
        if pending structs had to be dropped)."""
        accepted, refusals = replica.integrate(updates)
        update = replica.take_emitted()
        pending = self._pending(replica, updates, accepted)
        if pending:
            refusals += pending
            replica = _rebuilt(replica)
        refusals.sort(key=lambda refusal: refusal.index)
        return Applied(update, tuple(refusals)), replica

    @staticmethod
    def _pending(replica: _Replica, updates: Sequence[bytes], accepted: list[int]) -> list[Refusal]:
        state = replica.doc.get_state()
        refusals = []
        for index in accepted:
            if get_update(updates[index], state)[:1] != _NOTHING_MISSING:
                refusals.append(
                    Refusal(index, BAD_UPDATE, "depends on changes this document does not have")
                )
        return refusals

    def _apply_near_limits(self, updates: Sequence[bytes]) -> Applied:
        """Apply to a copy; keep the copy only if it stays within the limits (or shrank)."""
        before_text, before_state = self.text_bytes, self._state_bytes
        applied, copy = self._apply_to(_rebuilt(self._replica), updates)
        after_text = len(copy.text)
        after_state = len(copy.doc.get_update())
        if (after_text > self.max_text_bytes and after_text > before_text) or (
            after_state > self.max_state_bytes and after_state > before_state
        ):
            reason = (
                f"the document would hold {after_text} bytes of text and {after_state} bytes "
                f"of state; the limits are {self.max_text_bytes} and {self.max_state_bytes}"
            )
            return Applied(
                None, tuple(Refusal(i, DOC_TOO_LARGE, reason) for i in range(len(updates)))
            )
        self._replica = copy
        self._state_bytes = after_state
        return applied
