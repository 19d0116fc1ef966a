"""Acceptance test of the collaborative editor: every client converges, nothing is lost.

Several real ``CollabClient``s talk to the real ``CollabService`` (live documents, group
commit, the SQLite store run inline) over in-memory connections that delay every segment
by a random amount, keeping each direction in order like TCP, and split what is sent into
random segments. Everything runs in Trio's virtual time. Hypothesis draws the actions,
inside one ``trio.run`` per example:

* edits at random places: insert a unique marker, insert filler text, delete a range,
  replace a range by a marker (``CollabClient.replace``), or several of these at once
  through ``CollabClient.edit`` (the text area path, a diff); each on a fresh or a stale
  view (remote edits arriving between ``view()`` and the edit);
* pauses of random length (0 means edits at the same instant), latency changes;
* connection resets (the client reconnects by itself), offline periods (connecting fails
  until back online), clients stopping (``run`` cancelled) and starting again.

After quiescence (everyone online and running on a calmer network, every client flushed,
every client holding the server's text through relays alone, then synced):

* every client's text (and caught-up view) is the server's live document's, which is also
  what a fresh client receives and what the store reloads;
* every marker that no deletion touched (a deletion touches what its range covered in the
  view of the client that made it) is present exactly once; every touched one is gone; no
  marker character appears twice.

Markers are made only of characters unique to them (BMP and astral CJK ideographs, which
also exercise the code point / UTF-8 offset translations). Bracketed markers like
``<m17>`` would make the oracle wrong: deleting ``><`` between two markers can re-form a
third from fragments, and a diff may attribute the deletion of a repeated character to
either copy. With unique characters, the markers an edit touches are exactly those with a
character in its replacements' ranges, whichever equivalent diff was chosen.

A second test pins a bug this one found: a reconnection whose handshake outlived the
client's 10 s deadline ended ``CollabClient.run`` with ``TooSlowError``.

hypothesis-trio is not used: Trio registers its scheduler's ``Random`` with Hypothesis
(and then schedules deterministically), so one ``trio.run`` per example is reproducible.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncrox.client.collab import CollabClient, Connector
from syncrox.config import Config, StoreConfig
from syncrox.net.lines import RECEIVE_CHUNK, LineConnection
from syncrox.protocol.collab_doc import DocumentCore, template_update
from syncrox.protocol.collab_text import TextEdit, apply_edits, diff_text
from syncrox.services.collab import CollabService
from syncrox.services.context import ServiceContext
from syncrox.services.registry import RoomRegistry
from syncrox.store import Store
from tests.conftest import make_config

T = TypeVar("T")

LANGUAGE = "python"
MAX_STEPS = 50
MAX_DELETE = 12
EXAMPLE_BUDGET_S = 3600.0  # virtual seconds for a whole example: a hang fails
SETTLE_BUDGET_S = 600.0  # virtual seconds to reach quiescence
DELAYS_S = (0.0, 0.002, 0.05, 0.3, 1.0, 4.0)  # the most a segment may be delayed
CALM_DELAY_S = 1.0  # at quiescence
PAUSES_S = (0.0, 0.0, 0.001, 0.03, 0.4, 3.0)
FILLERS = ("x", "\n", "  ", "ab", "é")
ACTIONS = ("edit",) * 8 + ("look", "drop", "offline", "online", "stop", "start", "latency")
EDIT_KINDS = ("insert", "insert", "replace", "delete", "filler", "compound")

# ---------------------------------------------------------------------------------------
# Markers: three characters no other marker (or the template) uses.

_BMP, _ASTRAL, _MAX_MARKERS = 0x4E00, 0x20000, 5000


def marker(n: int) -> str:
    return chr(_BMP + 2 * n) + chr(_ASTRAL + n) + chr(_BMP + 2 * n + 1)


def owner(ch: str) -> int | None:
    """The marker ``ch`` belongs to, if any."""
    code = ord(ch)
    if _BMP <= code < _BMP + 2 * _MAX_MARKERS:
        return (code - _BMP) // 2
    if _ASTRAL <= code < _ASTRAL + _MAX_MARKERS:
        return code - _ASTRAL
    return None


def readable(text: str) -> str:
    """``text`` with markers spelt ``<m17>`` and fragments of markers ``<~17>``."""
    out, i = [], 0
    while i < len(text):
        n = owner(text[i])
        if n is not None and text.startswith(marker(n), i):
            out.append(f"<m{n}>")
            i += 3
            continue
        out.append(text[i] if n is None else f"<~{n}>")
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------
# The network: in-memory connections with delayed, segmented, ordered delivery.


class Pipe:
    """One direction of a connection: segments arrive in order, each after a delay."""

    def __init__(self, rng: random.Random, max_delay: float) -> None:
        self.rng, self.max_delay = rng, max_delay
        self.in_flight: deque[tuple[float, bytes]] = deque()
        self.arrived = bytearray()
        self.last_arrival = -math.inf
        self.finished = False  # the sender closed: EOF once what is in flight arrived
        self.reader_closed = False
        self.broken = False  # reset: everything in flight is lost
        self.lot = trio.lowlevel.ParkingLot()

    def push(self, data: bytes) -> None:
        if self.broken or self.reader_closed:
            raise trio.BrokenResourceError("connection reset by peer")
        cuts = sorted(self.rng.sample(range(1, len(data)), min(len(data) - 1, 2)))
        now = trio.current_time()
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            arrival = max(self.last_arrival, now + self.rng.uniform(0.0, self.max_delay))
            self.in_flight.append((arrival, data[start:end]))
            self.last_arrival = arrival
        self.lot.unpark_all()

    async def pull(self, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        while True:
            if self.broken:
                raise trio.BrokenResourceError("connection reset by peer")
            if self.reader_closed:
                raise trio.ClosedResourceError("closed")
            now = trio.current_time()
            while self.in_flight and self.in_flight[0][0] <= now:
                self.arrived += self.in_flight.popleft()[1]
            if self.arrived:
                chunk = bytes(self.arrived[:max_bytes])
                del self.arrived[:max_bytes]
                return chunk
            if self.finished and not self.in_flight:
                return b""
            with trio.move_on_at(self.in_flight[0][0] if self.in_flight else math.inf):
                await self.lot.park()

    def reset(self) -> None:
        self.broken = True
        self.in_flight.clear()
        self.arrived.clear()
        self.lot.unpark_all()


class LinkEnd(trio.abc.Stream):
    """One end of a connection (``outgoing`` is the peer's ``incoming``)."""

    def __init__(self, outgoing: Pipe, incoming: Pipe) -> None:
        self.outgoing, self.incoming = outgoing, incoming
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise trio.ClosedResourceError("closed")
        if data:
            self.outgoing.push(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.closed:
            raise trio.ClosedResourceError("closed")
        return await self.incoming.pull(max_bytes or RECEIVE_CHUNK)

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.outgoing.finished = True
            self.outgoing.lot.unpark_all()
            self.incoming.reader_closed = True
            self.incoming.lot.unpark_all()
        await trio.lowlevel.checkpoint()


@dataclass
class Peer:
    """A client, its network conditions and whether it runs."""

    index: int
    rng: random.Random
    max_delay: float
    client: CollabClient = field(init=False)
    online: bool = True
    link: tuple[Pipe, Pipe] | None = None
    scope: trio.CancelScope | None = None  # of the running ``client.run``
    done: trio.Event = field(default_factory=trio.Event)

    def reset(self) -> None:
        if self.link is not None:
            for pipe in self.link:
                pipe.reset()


# ---------------------------------------------------------------------------------------
# The scenario


class Scenario:
    def __init__(
        self,
        data: st.DataObject | None,
        config: Config,
        store: Store,
        service: CollabService,
        room: str,
        nursery: trio.Nursery,
    ) -> None:
        self.data, self.config, self.store = data, config, store
        self.service, self.room, self.nursery = service, room, nursery
        self.peers: list[Peer] = []
        self.connections = 0
        self.next_marker = 0
        self.inserted: set[int] = set()  # markers that reached a replica
        self.touched: set[int] = set()  # markers some deletion overlapped
        self.reinserted: set[int] = set()  # markers a diff deleted and inserted again
        self.log: list[str] = []  # what happened, for the failure report

    def draw(self, strategy: st.SearchStrategy[T], label: str) -> T:
        assert self.data is not None, "this scenario draws nothing"
        return self.data.draw(strategy, label=label)

    def add_peer(self, user: str, max_delay: float, seed: int) -> Peer:
        index = len(self.peers)
        peer = Peer(index, random.Random(seed), max_delay)
        peer.client = CollabClient(
            self._connector(peer), language=LANGUAGE, room=self.room, user=user,
            client_id=100 + index,
        )  # fmt: skip
        self.peers.append(peer)
        return peer

    # ------------------------------------------------------------------ the network

    def _connector(self, peer: Peer) -> Connector:
        async def connect() -> trio.abc.Stream:
            await trio.lowlevel.checkpoint()
            if not peer.online:
                raise OSError("network unreachable (offline)")
            up = Pipe(random.Random(peer.rng.getrandbits(64)), peer.max_delay)
            down = Pipe(random.Random(peer.rng.getrandbits(64)), peer.max_delay)
            peer.link = (up, down)
            self.connections += 1
            name = f"peer{peer.index}:{self.connections}"
            self.nursery.start_soon(self._serve, LinkEnd(down, up), name)
            return LinkEnd(up, down)

        return connect

    async def _serve(self, stream: LinkEnd, name: str) -> None:
        """What ``serve_tcp`` does for a connection; anything but a reset fails the test."""
        tcp = self.config.tcp
        conn = LineConnection(
            stream, max_line_bytes=tcp.max_line_bytes, peer=name, send_timeout_s=tcp.send_timeout_s
        )
        try:
            await self.service.handle_connection(conn)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # a reset connection
        finally:
            await conn.aclose()

    # ------------------------------------------------------------------ running clients

    async def start(self, peer: Peer) -> None:
        if peer.scope is not None or not peer.online:
            return
        try:
            await self.nursery.start(self._run, peer)
        except trio.TooSlowError:
            # By design ``run`` gives up when its first handshake takes longer than 10 s
            # (possible at 4 s per segment): the user would see "cannot connect".
            self.log.append(f"t={trio.current_time():.3f} peer{peer.index} start timed out")
            peer.scope = None

    async def _run(self, peer: Peer, *, task_status: trio.TaskStatus[None]) -> None:
        peer.done = trio.Event()
        try:
            with trio.CancelScope() as peer.scope:
                await peer.client.run(task_status=task_status)
        finally:
            peer.done.set()

    async def stop(self, peer: Peer) -> None:
        if peer.scope is not None:
            peer.scope.cancel()
            await peer.done.wait()
            peer.scope = None

    # ------------------------------------------------------------------ actions

    async def step(self) -> None:
        peer = self.draw(st.sampled_from(self.peers), "peer")
        action = self.draw(st.sampled_from(ACTIONS), "action")
        self.log.append(f"t={trio.current_time():.3f} peer{peer.index} {action}")
        match action:
            case "edit":
                self.edit(peer)
            case "look":
                peer.client.view()
            case "drop":
                peer.reset()
            case "offline":
                peer.online = False
                peer.reset()
            case "online":
                peer.online = True
            case "stop":
                await self.stop(peer)
            case "start":
                await self.start(peer)
            case "latency":
                peer.max_delay = self.draw(st.sampled_from(DELAYS_S), "max delay")
        await trio.sleep(self.draw(st.sampled_from(PAUSES_S), "pause"))

    def edit(self, peer: Peer) -> None:
        client = peer.client
        if self.draw(st.booleans(), "catch up the view first"):
            client.view()
        old = client.replica.viewed  # what the edit is relative to (maybe stale)
        kind = self.draw(st.sampled_from(EDIT_KINDS), "edit kind")
        if kind == "compound":
            new = old
            for _ in range(self.draw(st.integers(1, 3), "changes")):
                change = self._change(new, self.draw(st.sampled_from(EDIT_KINDS[:-1]), "kind"))
                new = apply_edits(new, [change])
            edits = diff_text(old, new)  # what ``Replica.edit`` will apply
            self._record(old, new, edits)
            client.edit(new)
        else:
            change = self._change(old, kind)
            self._record(old, apply_edits(old, [change]), [change])
            client.replace(change.start, change.end, change.text)
        self.log[-1] += f" {kind}: {readable(old)!r} -> {readable(client.replica.viewed)!r}"

    def _change(self, text: str, kind: str) -> TextEdit:
        if kind in ("delete", "replace") and text:
            spots = [i for i, ch in enumerate(text) if owner(ch) is not None]
            aim: bool = bool(spots) and self.draw(st.booleans(), "aim at a marker")
            if aim:
                start = self.draw(st.sampled_from(spots), "at") - self.draw(st.integers(0, 3), "-")
                start = max(0, start)
            else:
                start = self.draw(st.integers(0, len(text) - 1), "start")
            end = start + self.draw(st.integers(1, min(MAX_DELETE, len(text) - start)), "length")
            return TextEdit(start, end, self._new_marker() if kind == "replace" else "")
        # Never inside a marker: that would split it although nobody deleted it.
        places = [
            i
            for i in range(len(text) + 1)
            if not (0 < i < len(text) and owner(text[i - 1]) == owner(text[i]) is not None)
        ]
        at = self.draw(st.sampled_from(places), "position")
        filler = kind == "filler"
        return TextEdit(at, at, self.draw(st.sampled_from(FILLERS), "filler") if filler else
                        self._new_marker())  # fmt: skip

    def _new_marker(self) -> str:
        self.next_marker += 1
        assert self.next_marker < _MAX_MARKERS
        return marker(self.next_marker)

    def _record(self, old: str, new: str, edits: list[TextEdit]) -> None:
        """Which markers ``edits`` (turning ``old`` into ``new``) touched and inserted."""
        before = {n for ch in old if (n := owner(ch)) is not None}
        for edit in edits:
            self.touched |= {n for ch in old[edit.start : edit.end] if (n := owner(ch)) is not None}
            for n in {n for ch in edit.text if (n := owner(ch)) is not None}:
                if n in before:
                    self.reinserted.add(n)  # a new copy of it: it may legitimately repeat
                    self.touched.add(n)
                else:
                    self.inserted.add(n)
                    if marker(n) not in new:  # partly deleted by a later change of a compound
                        self.touched.add(n)

    # ------------------------------------------------------------------ quiescence

    async def settle(self) -> None:
        """Everyone back online (on a calmer network) and running; every change stored
        (``flush``) and relayed to every client unasked (relays alone must converge); then
        ``sync``."""
        for peer in self.peers:
            peer.online = True
            peer.max_delay = min(peer.max_delay, CALM_DELAY_S)  # handshakes fit in 10 s
        for peer in self.peers:
            await self.start(peer)
            assert peer.scope is not None, f"peer{peer.index} cannot connect"
        with trio.move_on_after(SETTLE_BUDGET_S) as settling:
            for peer in self.peers:
                await peer.client.flush()
            server = self.server_text()
            for peer in self.peers:
                version = peer.client.version
                while peer.client.text != server:
                    version = await peer.client.wait_changed(version)
            for peer in self.peers:
                await peer.client.sync()
        if settling.cancelled_caught:
            texts = [readable(peer.client.text) for peer in self.peers]
            raise AssertionError(f"no quiescence: {texts}{self.report()}")

    def server_text(self) -> str:
        doc = self.service.hub.live(self.room, LANGUAGE)
        assert doc is not None, "nobody has the document open"
        return doc.core.text

    def report(self) -> str:
        return "\n".join(["", *self.log, f"server: {readable(self.server_text())!r}"])

    async def check(self) -> None:
        server = self.server_text()
        report = self.report()
        for peer in self.peers:
            client = peer.client
            assert not client.refusals, (client.refusals, report)
            assert client.text == server, (f"peer{peer.index}", readable(client.text), report)
            assert client.view() == server, (f"view of peer{peer.index}", report)
        assert await self._fresh_text() == server, report
        assert await self._stored_text() == server, report
        repeated = {ch for ch, count in Counter(server).items() if count > 1}
        found = {n for ch in server if (n := owner(ch)) is not None}
        assert found <= self.inserted, report
        for n in sorted(self.inserted):
            intact = server.count(marker(n))
            if n not in self.touched:
                assert intact == 1, (f"marker m{n} appears {intact} times", report)
            elif n not in self.reinserted:
                assert intact == 0, (f"marker m{n} was deleted, yet it is there", report)
            if n not in self.reinserted:
                assert not repeated & set(marker(n)), (f"characters of m{n} repeat", report)

    async def _fresh_text(self) -> str:
        """What a client that has never seen the document receives."""
        checker = self.add_peer("checker", 0.0, seed=0)
        self.peers.pop()
        async with trio.open_nursery() as nursery:
            with trio.fail_after(SETTLE_BUDGET_S):
                await nursery.start(checker.client.run)
            nursery.cancel_scope.cancel()
        return checker.client.text

    async def _stored_text(self) -> str:
        stored = await self.store.collab.open_document(
            self.room, LANGUAGE, template_update(LANGUAGE), time.time()
        )
        limits = self.config.collab
        return DocumentCore.restore(
            [stored.snapshot, *stored.updates],
            max_text_bytes=limits.max_document_bytes,
            max_state_bytes=limits.max_state_bytes,
        ).text


# ---------------------------------------------------------------------------------------
# The test


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def logged_errors() -> Iterator[_Errors]:
    handler = _Errors()
    logger = logging.getLogger("syncrox")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@asynccontextmanager
async def collab_service(
    data: st.DataObject | None, data_dir: Path, **collab_overrides: object
) -> AsyncIterator[Scenario]:
    """The collab service on an inline SQLite store, with a room, in a nursery of its own."""
    base = make_config(data_dir)
    collab = dataclasses.replace(base.collab, **collab_overrides)  # type: ignore[arg-type]
    config = dataclasses.replace(base, store=StoreConfig(sqlite_worker_thread=False), collab=collab)
    store = Store.open(config.data_dir, sqlite_worker_thread=False)
    try:
        registry = RoomRegistry(store.rooms, config.rooms)
        member, _ = await registry.create("owner", "test")
        ctx = ServiceContext(config, store, registry)
        async with trio.open_nursery() as nursery:
            service = CollabService(ctx, nursery)
            yield Scenario(data, config, store, service, member.code, nursery)
            nursery.cancel_scope.cancel()
    finally:
        store.close()


def run_in_virtual_time(main: Callable[[Path], Awaitable[None]]) -> None:
    """``main(data_dir)`` in virtual time; an error the service logs fails the test."""
    with tempfile.TemporaryDirectory() as tmp, logged_errors() as errors:
        clock = trio.testing.MockClock(autojump_threshold=0)
        trio.run(main, Path(tmp) / "data", clock=clock)
    assert not errors.messages, errors.messages


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_clients_converge_and_keep_every_undeleted_marker(data: st.DataObject) -> None:
    async def main(data_dir: Path) -> None:
        overrides = {
            "compact_every_updates": data.draw(st.sampled_from((500, 20, 3)), "compact every"),
            "unload_grace_s": data.draw(st.sampled_from((10.0, 0.5)), "unload grace"),
        }
        with trio.fail_after(EXAMPLE_BUDGET_S):
            async with collab_service(data, data_dir, **overrides) as run:
                for index in range(data.draw(st.integers(2, 4), label="clients")):
                    delay = data.draw(st.sampled_from(DELAYS_S), label="max delay")
                    seed = data.draw(st.integers(0, 2**32), label="seed")
                    await run.start(run.add_peer(f"u{index}", delay, seed))
                for _ in range(data.draw(st.integers(1, MAX_STEPS), label="steps")):
                    await run.step()
                await run.settle()
                await run.check()

    run_in_virtual_time(main)


def test_a_reconnection_slower_than_the_handshake_deadline_is_retried() -> None:
    """Regression: the client's 10 s handshake deadline used to escape ``run`` as
    ``TooSlowError`` on a reconnection (only the first connection may end ``run``)."""

    async def main(data_dir: Path) -> None:
        with trio.fail_after(EXAMPLE_BUDGET_S):
            async with collab_service(None, data_dir) as run:
                peer = run.add_peer("u0", 0.0, seed=1)
                await run.start(peer)
                peer.client.view()
                peer.client.insert(0, marker(1))
                await peer.client.flush()
                peer.max_delay = 6.0  # per segment: most handshakes now take over 10 s
                peer.reset()
                await trio.sleep(120)
                assert peer.scope is not None and not peer.done.is_set(), "run ended"
                attempts, handshakes = run.connections, peer.client.connections
                assert attempts - handshakes >= 2, (attempts, handshakes)  # some timed out
                peer.client.view()
                peer.client.insert(0, marker(2))
                await run.settle()
                assert peer.client.text == run.server_text()
                assert peer.client.text.startswith(marker(2) + marker(1))

    run_in_virtual_time(main)
