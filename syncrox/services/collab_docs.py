"""Live documents of the collab service: one Trio task per open document, and the hub that
loads, shares and unloads them.

Theory of operation
-------------------
Every connection that opened ``(room, language)`` is a *subscriber* of the same
``LiveDocument``. Connections only parse frames and put them in the document's bounded
inbox (a full inbox makes readers wait: TCP backpressure). The document's task takes
whatever has arrived as one *batch* and, in order:

1. applies each sender's updates as one group (``DocumentCore.apply``; groups of different
   senders in one batch are causally independent, because nobody has seen an update
   before it is relayed, after step 2);
2. appends everything integrated to the store in **one** transaction (group commit) and
   waits for it: *nothing is relayed or acknowledged before it is stored*;
3. relays each sender's integrated update to every other subscriber, answers sync step 1
   requests from the now-stored state, relays awareness, then sends ``ERR`` lines for
   refused updates and ``ACK <frame>`` to each sender;
4. folds the log into a snapshot once it is long enough.

While step 2 runs, new frames queue up and form the next batch, so the cost of a commit is
shared by everything that arrived meanwhile.

Failures: a store failure or a pycrdt fault makes the document reload from the store (the
last stored state); senders whose updates were not stored are told ``ERR INTERNAL`` and
disconnected, so their clients reconnect and resync by state vector (nothing is lost). A
document whose reload fails too is dropped with every subscriber.

Lifetime: the hub counts the connections using a document; when none has for
``unload_grace_s`` the task removes it from the hub and ends (its log is already stored),
and the next open loads it again. Rooms cannot expire while a connection holds a presence
in them, and the grace period is far below ``rooms.room_idle_expiry_s``, so a document in
memory never outlives its room.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from syncrox.config import CollabConfig
from syncrox.errors import BUSY, INTERNAL, LocalProtocolError, ProtocolError, StoreError
from syncrox.logs import log_event
from syncrox.protocol.collab import (
    BAD_AWARENESS,
    AwarenessEntry,
    AwarenessUpdate,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    YMessage,
    encode_frame,
    encode_message,
    encode_update,
    format_ack,
)
from syncrox.protocol.collab_awareness import AwarenessTable
from syncrox.protocol.collab_doc import Applied, CrdtFault, DocumentCore, Refusal, template_update
from syncrox.protocol.framing import encode_line, format_error
from syncrox.services.collab_outbox import Outbox
from syncrox.store.collab import CollabStore

logger = logging.getLogger("syncrox.collab")

MAX_BATCH_BYTES = 8 * 1024 * 1024  # frames taken into one batch, beyond the first


@dataclass(eq=False)
class Subscriber:
    """One connection with a document open."""

    key: int
    user: str
    peer: str
    outbox: Outbox


@dataclass(frozen=True)
class Inbound:
    """Frame number ``frame`` (1-based, counted from ``OPENED``) of ``subscriber``."""

    subscriber: Subscriber
    frame: int
    messages: list[YMessage]
    size: int


@dataclass
class _Batch:
    """A batch sorted by what must happen to it."""

    groups: dict[Subscriber, list[bytes]] = field(default_factory=dict)
    last_frame: dict[Subscriber, int] = field(default_factory=dict)
    steps: list[tuple[Subscriber, bytes]] = field(default_factory=list)
    queries: list[Subscriber] = field(default_factory=list)
    awareness: list[tuple[Subscriber | None, list[AwarenessEntry]]] = field(default_factory=list)


class DocumentHub:
    """Every live document of the service, keyed by ``(room, language)``."""

    def __init__(self, store: CollabStore, config: CollabConfig, nursery: trio.Nursery) -> None:
        self.store = store
        self.config = config
        self._nursery = nursery
        self._docs: dict[tuple[str, str], LiveDocument | trio.Event] = {}

    def __len__(self) -> int:
        return sum(1 for doc in self._docs.values() if isinstance(doc, LiveDocument))

    def live(self, room: str, language: str) -> LiveDocument | None:
        found = self._docs.get((room, language))
        return found if isinstance(found, LiveDocument) else None

    async def acquire(self, room: str, language: str) -> LiveDocument:
        """The live document, loaded if needed; the caller must ``release`` it."""
        key = (room, language)
        while True:
            found = self._docs.get(key)
            if isinstance(found, trio.Event):
                await found.wait()  # another connection is loading it
                continue
            if found is None:
                found = await self._load(key)
            if found.users >= self.config.max_clients_per_document:
                raise LocalProtocolError(BUSY, f"{language} of room {room} has too many clients")
            found.users += 1
            return found

    def release(self, doc: LiveDocument) -> None:
        doc.users -= 1
        if doc.users == 0:
            doc.idle_since = trio.current_time()
            doc.wake()

    async def _load(self, key: tuple[str, str]) -> LiveDocument:
        loading = trio.Event()
        self._docs[key] = loading
        try:
            doc = LiveDocument(self, *key)
            await doc.load()
        except BaseException:
            del self._docs[key]
            raise
        finally:
            loading.set()
        self._docs[key] = doc
        self._nursery.start_soon(doc.run)
        return doc

    def forget(self, doc: LiveDocument) -> None:
        if self._docs.get((doc.room, doc.language)) is doc:
            del self._docs[(doc.room, doc.language)]


class LiveDocument:
    def __init__(self, hub: DocumentHub, room: str, language: str) -> None:
        self.hub = hub
        self.config = hub.config
        self.room = room
        self.language = language
        self.users = 0
        self.idle_since = trio.current_time()
        self.subscribers: dict[int, Subscriber] = {}
        self.awareness = AwarenessTable(
            timeout_s=self.config.awareness_timeout_s,
            max_state_bytes=self.config.max_awareness_state_bytes,
            max_clients_per_owner=self.config.max_awareness_clients_per_connection,
        )
        # Replaced by ``load`` before the document is used (the hub awaits it).
        self.core = DocumentCore(max_text_bytes=0, max_state_bytes=0)
        self.last_seq = 0
        self._log_entries = 0
        self._log_bytes = 0
        self._send, self._receive = trio.open_memory_channel[Inbound | None](
            self.config.inbox_frames
        )
        self._inbox_bytes = 0  # of the frames queued: bounded too (frames may be 2 MiB)
        self._inbox_room = trio.lowlevel.ParkingLot()
        self.dead = False  # its task has ended: nothing submitted will be processed

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        """Load (or create) the document from the store; replaces what is in memory."""
        stored = await self.hub.store.open_document(
            self.room, self.language, template_update(self.language), time.time()
        )
        try:
            self.core = DocumentCore.restore(
                [stored.snapshot, *stored.updates],
                max_text_bytes=self.config.max_document_bytes,
                max_state_bytes=self.config.max_state_bytes,
            )
        except (ValueError, CrdtFault) as exc:
            raise StoreError(f"document {self.room}/{self.language} is damaged: {exc}") from exc
        self.last_seq = stored.last_seq
        self._log_entries, self._log_bytes = len(stored.updates), stored.log_bytes
        log_event(
            logger, "doc.load", room=self.room, lang=self.language, created=stored.created,
            text_bytes=self.core.text_bytes, log_entries=self._log_entries,
        )  # fmt: skip

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers[subscriber.key] = subscriber
        states = self.awareness.states()
        if states:
            subscriber.outbox.put(encode_frame([encode_message(AwarenessUpdate(tuple(states)))]))

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if self.subscribers.pop(subscriber.key, None) is not None:
            self._relay_awareness(None, self.awareness.remove_owner(subscriber.key))

    async def submit(self, inbound: Inbound) -> None:
        """Queue a frame for the document task (waits while the inbox is full, in frames
        or in bytes). Raises ``INTERNAL`` (fatal) if the document's task has ended."""
        limit = self.config.inbox_bytes
        while self._inbox_bytes and self._inbox_bytes + inbound.size > limit and not self.dead:
            await self._inbox_room.park()
        self._inbox_bytes += inbound.size
        try:
            await self._send.send(inbound)
        except trio.BrokenResourceError:
            self._inbox_bytes -= inbound.size
            raise LocalProtocolError(
                INTERNAL, "the document failed; reconnect to resync", fatal=True
            ) from None
        except BaseException:
            self._inbox_bytes -= inbound.size  # not queued after all (cancelled)
            raise

    def _took(self, inbound: Inbound) -> None:
        self._inbox_bytes -= inbound.size
        self._inbox_room.unpark_all()

    def wake(self) -> None:
        with contextlib.suppress(trio.WouldBlock):  # a full inbox wakes the task anyway
            self._send.send_nowait(None)

    # ------------------------------------------------------------------ the task

    async def run(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                await self._process(batch)
        except Exception:
            logger.exception("doc.crash room=%s lang=%s", self.room, self.language)
            self._drop_everyone("the document failed; reconnect to resync")
        finally:
            self.dead = True
            self._receive.close()  # submitters now fail at once instead of waiting forever
            self._inbox_room.unpark_all()
            self.hub.forget(self)
            log_event(logger, "doc.unload", room=self.room, lang=self.language)

    async def _next_batch(self) -> list[Inbound] | None:
        """The next frames to process, or ``None`` once nobody has used it for the grace."""
        while True:
            deadline = self.awareness.next_deadline()
            if self.users == 0:
                deadline = min(deadline, self.idle_since + self.config.unload_grace_s)
            with trio.move_on_at(deadline):
                first = await self._receive.receive()
                if first is not None:
                    return self._drain(first)
                continue
            now = trio.current_time()
            self._relay_awareness(None, self.awareness.expire(now))
            if self.users == 0 and now >= self.idle_since + self.config.unload_grace_s:
                self.hub.forget(self)  # before any await: a new open loads afresh
                return None

    def _drain(self, first: Inbound) -> list[Inbound]:
        batch, size = [first], first.size
        self._took(first)
        while size < MAX_BATCH_BYTES:
            try:
                item = self._receive.receive_nowait()
            except trio.WouldBlock:
                break
            if item is not None:
                batch.append(item)
                size += item.size
                self._took(item)
        return batch

    async def _process(self, inbounds: list[Inbound]) -> None:
        batch = self._sort(inbounds)
        done: dict[Subscriber, Applied] = {}  # stored and relayed: to acknowledge
        applied: dict[Subscriber, Applied] = {}  # applied in memory, not yet stored
        for sub, updates in batch.groups.items():
            # pycrdt runs on the loop every service shares: let the others in between
            # senders' groups, so one batch of many costly groups (each within its own
            # bounds) is never one long stall.
            await trio.lowlevel.checkpoint()
            try:
                applied[sub] = self.core.apply(updates)
            except CrdtFault as exc:
                log_event(
                    logger, "doc.fault", logging.ERROR, room=self.room, lang=self.language,
                    peer=sub.peer, index=exc.index,
                )  # fmt: skip
                refusal = Refusal(exc.index, "BAD_UPDATE", "the CRDT library failed on it")
                applied[sub] = Applied(None, (refusal,))
                # What was integrated before the fault is stored, then the document is
                # rebuilt from the store and the remaining groups go to the new one.
                await self._commit(applied, done)
                await self._reload()
        await self._commit(applied, done)
        self._answer(batch)
        self._acknowledge(batch, done)
        await self._maybe_compact()

    async def _commit(
        self, applied: dict[Subscriber, Applied], done: dict[Subscriber, Applied]
    ) -> None:
        """Store what ``applied`` integrated, then relay it; move it to ``done``."""
        if await self._persist(applied):
            self._send_updates(applied)
            done.update(applied)
        applied.clear()

    def _sort(self, inbounds: list[Inbound]) -> _Batch:
        batch = _Batch()
        now = trio.current_time()
        for inbound in inbounds:
            sub = inbound.subscriber
            live = sub.key in self.subscribers
            for message in inbound.messages:
                match message:
                    case SyncUpdate(update) | SyncStep2(update):
                        batch.groups.setdefault(sub, []).append(update)
                        batch.last_frame[sub] = inbound.frame
                    case SyncStep1(state_vector) if live:
                        batch.steps.append((sub, state_vector))
                    case AwarenessUpdate(entries) if live:
                        self._awareness(batch, sub, entries, now)
                    case QueryAwareness() if live:
                        batch.queries.append(sub)
        return batch

    def _awareness(
        self, batch: _Batch, sub: Subscriber, entries: tuple[AwarenessEntry, ...], now: float
    ) -> None:
        accepted, problems = self.awareness.update(sub.key, sub.user, entries, now)
        if accepted:
            batch.awareness.append((sub, accepted))
        if problems:  # one answer (and one log line) per message, however many entries
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self._refuse(sub, BAD_AWARENESS, problems[0] + more)

    # ------------------------------------------------------------------ apply and store

    async def _persist(self, results: dict[Subscriber, Applied]) -> bool:
        updates = [applied.update for applied in results.values() if applied.update is not None]
        if not updates:
            return True
        try:
            self.last_seq = await self.hub.store.append(
                self.room, self.language, updates, time.time()
            )
        except StoreError as exc:
            log_event(
                logger, "doc.store_failed", logging.ERROR, room=self.room, lang=self.language,
                reason=str(exc),
            )  # fmt: skip
            for sub, applied in results.items():
                if applied.update is not None:
                    sub.outbox.fail(INTERNAL, "your changes could not be stored; reconnect")
            await self._reload()
            return False
        self._log_entries += len(updates)
        self._log_bytes += sum(len(update) for update in updates)
        return True

    async def _reload(self) -> None:
        """Replace the in-memory document by the stored one (drops what was not stored)."""
        try:
            await self.load()
        except StoreError as exc:
            log_event(
                logger, "doc.reload_failed", logging.ERROR, room=self.room, lang=self.language,
                reason=str(exc),
            )  # fmt: skip
            self._drop_everyone("the document could not be reloaded")
            raise

    async def _maybe_compact(self) -> None:
        if (
            self._log_entries < self.config.compact_every_updates
            and self._log_bytes < self.config.compact_log_bytes
        ):
            return
        snapshot = self.core.encode_state()
        try:
            await self.hub.store.compact(self.room, self.language, snapshot, self.last_seq)
        except StoreError as exc:
            log_event(logger, "doc.compact_failed", logging.ERROR, reason=str(exc))
            return
        log_event(
            logger, "doc.compact", logging.DEBUG, room=self.room, lang=self.language,
            entries=self._log_entries, snapshot_bytes=len(snapshot),
        )  # fmt: skip
        self._log_entries = self._log_bytes = 0

    # ------------------------------------------------------------------ output

    def _send_updates(self, results: dict[Subscriber, Applied]) -> None:
        encoded = [
            (sender, encode_update(applied.update))
            for sender, applied in results.items()
            if applied.update is not None
        ]
        if not encoded:
            return
        for sub in self.subscribers.values():
            messages = [message for sender, message in encoded if sender is not sub]
            if messages:
                sub.outbox.put(encode_frame(messages))

    def _answer(self, batch: _Batch) -> None:
        for sender, entries in batch.awareness:
            self._relay_awareness(sender, entries)
        if batch.steps:
            state_vector = encode_message(SyncStep1(self.core.state_vector()))
            for sub, asked in batch.steps:
                try:
                    step2 = encode_message(SyncStep2(self.core.diff(asked)))
                except ProtocolError as exc:
                    self._refuse(sub, exc.code, exc.message)
                    continue
                sub.outbox.put(encode_frame([step2, state_vector]))
        states = self.awareness.states()
        for sub in batch.queries:
            sub.outbox.put(encode_frame([encode_message(AwarenessUpdate(tuple(states)))]))

    def _acknowledge(self, batch: _Batch, results: dict[Subscriber, Applied]) -> None:
        for sub, frame in batch.last_frame.items():
            applied = results.get(sub)
            if applied is None or sub.key not in self.subscribers:
                continue
            for refusal in applied.refusals:
                self._refuse(sub, refusal.code, refusal.reason)
            sub.outbox.put(encode_line(format_ack(frame)))

    def _relay_awareness(
        self, sender: Subscriber | None, entries: Sequence[AwarenessEntry]
    ) -> None:
        if not entries:
            return
        frame = encode_frame([encode_message(AwarenessUpdate(tuple(entries)))])
        for sub in self.subscribers.values():
            if sub is not sender:
                sub.outbox.put(frame)

    def _refuse(self, sub: Subscriber, code: str, reason: str) -> None:
        log_event(
            logger, "request.refused", logging.WARNING, peer=sub.peer, room=self.room,
            lang=self.language, code=code, reason=reason,
        )  # fmt: skip
        sub.outbox.put(encode_line(format_error(code, reason)))

    def _drop_everyone(self, reason: str) -> None:
        for sub in list(self.subscribers.values()):
            sub.outbox.fail(INTERNAL, reason)
