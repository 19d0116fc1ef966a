"""Collaborative editor: a long two-client editing trace through the server, and the
edit-to-peer latency of 10 people typing in one document.

    python -m bench.collab [--quick]

The server (room manager + collab service, default config, SQLite store in a temporary
directory) runs in a subprocess; the clients run in this process.

Trace. A seeded generator makes two pycrdt replicas type into the Python template: single
characters inserted at a cursor (60 %) or deleted before it (40 %), the cursor jumping now
and then. They work in *rounds*: each makes a burst of 1-32 operations without seeing the
other's, then both exchange what they did. The result is a list of Yjs updates, one per
operation (>= 100 000 in the full run, 10 000 with ``--quick``). Two raw protocol clients
replay it over loopback: each sends its burst of a round as one ``YMSG`` frame (what
``CollabClient`` does when edits pile up) and sends its next burst only once the other's
previous burst has been relayed to it (real clients only edit what they have seen, so
causality holds at the server). Measured: the server process's CPU time (user + system,
``/proc``) from the first frame until everything is acknowledged and both clients hold
the final text. Baseline, in this run: bare pycrdt applying the same updates to a fresh
``Doc`` in this process, once per update and once per burst (one transaction), each the
best of three; the cheaper is the baseline (the least work any server must do). Also
reported: the server's document core alone (``DocumentCore.apply``, one group per burst,
no sockets, no store) against the same baseline. Converged: both clients' texts, the
server's (a sync step 1 from nothing) and the bare document's equal the generator's final
text. Generating the full trace takes a minute or two: pycrdt finds an index by walking
the text's blocks, so typing into a long, interleaved document is quadratic.

Latency. Ten ``CollabClient`` editors in one fresh document, each typing one character at
a random place every 50-150 ms (about 10 characters per second each, brisk typing). An
edit's time is taken just before ``insert``; a peer has it once the editor's clock in the
peer's state vector passes it (checked after every remote change). Reported: p50 and p99
over every (edit, peer) pair, and that all replicas and the server converged. The ten
clients share this process (their CPU is reported): each edit is applied by nine of them,
so a peer's own queueing is part of what is measured.

Floor. The same replay through ``bench._relay_floor``, a Trio server that does nothing but
acknowledge each frame and relay it (``relay``), and one that also appends it to SQLite
first (``store``): no document, no checks. Its CPU against the same baseline is the least
any server of this shape can cost, so it tells the platform's share of the cost from ours.

Targets: server CPU <= 2 x bare pycrdt; p99 edit-to-peer < 50 ms.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio
from pycrdt import Doc, Text, TransactionEvent

from bench.common import (
    bench_main,
    cpu_seconds,
    parser,
    percentile,
    result_line,
    start_server,
    stop_server,
)
from syncrox.client.collab import CollabClient, tcp_connector
from syncrox.config import CollabConfig
from syncrox.errors import RemoteProtocolError
from syncrox.net.lines import LineConnection
from syncrox.protocol import collab as proto
from syncrox.protocol.collab_doc import TEXT_NAME, DocumentCore, template_update
from syncrox.protocol.framing import parse_error

HOST = "127.0.0.1"
LANGUAGE = "python"
SEED = 20_240_601
TARGET_COST_X_BARE = 2.0
TARGET_P99_MS = 50.0
MAX_BURST = 32
INSERT_SHARE = 0.6
JUMP_SHARE = 0.05
ALPHABET = "abcdefghijklmnopqrstuvwxyz     ()[]=:.,_'\n"
TRACE_CLIENTS = (1001, 1002)
EDITORS = 10
EDITOR_CLIENT_BASE = 2001
TYPE_INTERVAL_S = (0.05, 0.15)
MAX_FRAME_BYTES = 64 * 1024 * 1024
SETTLE_TIMEOUT_S = 60.0


# ------------------------------------------------------------------------------ server


async def create_room(port: int) -> str:
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        conn = LineConnection(stream, max_line_bytes=4096)
        await conn.send_line("CREATE bench")
        reply = (await conn.receive_line() or "").split()
    assert reply[:1] == ["ROOM"], reply
    return reply[1]


# ------------------------------------------------------------------------------ trace


@dataclass
class Trace:
    rounds: list[tuple[list[bytes], list[bytes]]]  # each client's updates, per round
    clocks: list[tuple[int, int]]  # each client's clock at the end of each round
    final_text: str

    @property
    def updates(self) -> int:
        return sum(len(a) + len(b) for a, b in self.rounds)


def _capture(into: list[bytes]) -> Callable[[TransactionEvent], None]:
    def on_commit(event: TransactionEvent) -> None:
        into.append(event.update)

    return on_commit


def generate_trace(operations: int, seed: int = SEED) -> Trace:
    """Two replicas typing in rounds; one update per single-character operation."""
    rng = random.Random(seed)
    docs: list[Doc[Text]] = []
    texts: list[Text] = []
    local: list[list[bytes]] = []
    for client in TRACE_CLIENTS:
        doc: Doc[Text] = Doc(client_id=client)
        doc.apply_update(template_update(LANGUAGE))
        captured: list[bytes] = []
        doc.observe(_capture(captured))
        docs.append(doc)
        texts.append(doc.get(TEXT_NAME, type=Text))
        local.append(captured)
    cursors = [len(text) for text in texts]
    inserted = [0, 0]
    trace = Trace([], [], "")
    done = 0
    while done < operations:
        bursts: list[list[bytes]] = []
        for side, text in enumerate(texts):
            local[side].clear()
            for _ in range(rng.randint(1, MAX_BURST)):
                size = len(text)
                if rng.random() < JUMP_SHARE:
                    cursors[side] = rng.randint(0, size)
                cursor = min(cursors[side], size)
                if cursor == 0 or rng.random() < INSERT_SHARE:
                    text.insert(cursor, rng.choice(ALPHABET))
                    cursors[side] = cursor + 1
                    inserted[side] += 1
                else:
                    del text[cursor - 1 : cursor]
                    cursors[side] = cursor - 1
                done += 1
            bursts.append(list(local[side]))
        for side in (0, 1):
            for update in bursts[side]:
                docs[1 - side].apply_update(update)
        trace.rounds.append((bursts[0], bursts[1]))
        trace.clocks.append((inserted[0], inserted[1]))
    trace.final_text = str(texts[0])
    assert trace.final_text == str(texts[1])
    return trace


def core_apply(trace: Trace) -> tuple[float, str]:
    """CPU seconds the server's document core alone (no sockets, no store) takes to apply
    the trace, one group per burst as the service would; its text."""
    limits = CollabConfig()
    core = DocumentCore.restore(
        [template_update(LANGUAGE)],
        max_text_bytes=limits.max_document_bytes,
        max_state_bytes=limits.max_state_bytes,
    )
    started = time.process_time()
    for bursts in trace.rounds:
        for burst in bursts:
            applied = core.apply(burst)
            assert not applied.refusals, applied.refusals
    return time.process_time() - started, core.text


def bare_apply(trace: Trace, *, per_burst: bool) -> tuple[float, str]:
    """CPU seconds pycrdt alone takes to apply the trace to a fresh ``Doc``; its text."""
    doc: Doc[Text] = Doc()
    doc.apply_update(template_update(LANGUAGE))
    started = time.process_time()
    for bursts in trace.rounds:
        for burst in bursts:
            if per_burst:
                with doc.transaction():
                    for update in burst:
                        doc.apply_update(update)
            else:
                for update in burst:
                    doc.apply_update(update)
    elapsed = time.process_time() - started
    return elapsed, str(doc.get(TEXT_NAME, type=Text))


# ------------------------------------------------------------------------------ raw client


class RawEditor:
    """One protocol connection with a local pycrdt replica: sends frames, applies relays,
    counts acknowledgements."""

    def __init__(self, conn: LineConnection, client_id: int) -> None:
        self.conn = conn
        self.doc: Doc[Text] = Doc(client_id=client_id)
        self.doc.apply_update(template_update(LANGUAGE))
        self.frames_sent = 0
        self.acked = 0
        self.errors: list[str] = []
        self.server_state: bytes | None = None  # the last sync step 2 received
        self._changed = trio.Event()

    @classmethod
    async def connect(cls, port: int, room: str, user: str, client_id: int) -> RawEditor:
        stream = await trio.open_tcp_stream(HOST, port)
        editor = cls(LineConnection(stream, max_line_bytes=4096), client_id)
        for line, expect in ((f"HELLO {user} {room}", "OK HELLO"), (f"OPEN {LANGUAGE}", "OPENED")):
            await editor.conn.send_line(line)
            reply = await editor.conn.receive_line()
            assert reply is not None, "the server closed the connection"
            assert reply.startswith(expect), reply
        return editor

    @property
    def text(self) -> str:
        return str(self.doc.get(TEXT_NAME, type=Text))

    def clock_of(self, client_id: int) -> int:
        return proto.decode_state_vector(self.doc.get_state()).get(client_id, 0)

    async def send(self, updates: list[bytes]) -> None:
        for update in updates:
            self.doc.apply_update(update)
        self.frames_sent += 1
        await self.conn.send(proto.encode_frame([proto.encode_update(u) for u in updates]))

    async def ask_state(self) -> None:
        self.server_state = None
        await self.conn.send(proto.encode_frame([proto.encode_message(proto.SyncStep1(b"\x00"))]))

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def wait_clock(self, client_id: int, clock: int) -> None:
        """Until this replica holds ``client_id``'s changes up to ``clock``."""
        while self.clock_of(client_id) < clock:
            await self._changed.wait()

    async def read(self) -> None:
        while (line := await self.conn.receive_line()) is not None:
            error = parse_error(line)
            if error is not None:
                self.errors.append(" ".join(error))
                raise RemoteProtocolError(*error)
            match proto.parse_server_line(line, max_frame_bytes=MAX_FRAME_BYTES):
                case proto.FrameHeader(size):
                    self._on_frame(await self.conn.receive_body(size))
                case proto.Ack(frames):
                    self.acked = frames
                case _:
                    pass
            self._changed.set()
            self._changed = trio.Event()

    def _on_frame(self, body: bytes) -> None:
        for message in proto.decode_frame(body, max_messages=1 << 20):
            match message:
                case proto.SyncUpdate(update):
                    self.doc.apply_update(update)
                case proto.SyncStep2(update):
                    self.server_state = update
                case _:
                    pass


async def replay_editor(editor: RawEditor, trace: Trace, side: int) -> None:
    peer_id = TRACE_CLIENTS[1 - side]
    for index, bursts in enumerate(trace.rounds):
        if index:  # only edit what the other's previous burst made
            await editor.wait_clock(peer_id, trace.clocks[index - 1][1 - side])
        await editor.send(bursts[side])
    await editor.wait_for(
        lambda: editor.acked >= editor.frames_sent and editor.text == trace.final_text
    )


@dataclass
class ReplayOutcome:
    seconds: float
    server_cpu_s: float
    frames: int
    converged: bool
    errors: list[str]


async def replay(
    ports: dict[str, int], trace: Trace, server_pid: int, ask_server: bool = True
) -> ReplayOutcome:
    """Replay ``trace`` through the server; with ``ask_server`` its text must converge too
    (the relay floor holds no document to ask)."""
    room = await create_room(ports["rooms"])
    editors = [
        await RawEditor.connect(ports["collab"], room, f"trace{side}", client)
        for side, client in enumerate(TRACE_CLIENTS)
    ]
    converged = False
    async with trio.open_nursery() as nursery:
        for editor in editors:
            nursery.start_soon(editor.read)
        cpu_before, started = cpu_seconds(server_pid), time.perf_counter()
        with trio.move_on_after(SETTLE_TIMEOUT_S + trace.updates / 1000):
            async with trio.open_nursery() as replaying:
                for side, editor in enumerate(editors):
                    replaying.start_soon(replay_editor, editor, trace, side)
            converged = True
        seconds, server_cpu = time.perf_counter() - started, cpu_seconds(server_pid) - cpu_before
        texts = [editor.text for editor in editors]
        if ask_server:
            texts.append(await server_text(editors[0]))
        converged = converged and all(text == trace.final_text for text in texts)
        nursery.cancel_scope.cancel()
    for editor in editors:
        await editor.conn.aclose()
    frames = sum(editor.frames_sent for editor in editors)
    errors = [error for editor in editors for error in editor.errors]
    return ReplayOutcome(seconds, server_cpu, frames, converged, errors)


async def server_text(editor: RawEditor) -> str:
    with trio.move_on_after(SETTLE_TIMEOUT_S):
        await editor.ask_state()
        await editor.wait_for(lambda: editor.server_state is not None)
    server_doc: Doc[Text] = Doc()
    server_doc.apply_update(editor.server_state or b"\x00\x00")
    return str(server_doc.get(TEXT_NAME, type=Text))


def floor_replay(trace: Trace, mode: str) -> ReplayOutcome:
    """The trace through ``bench._relay_floor`` (``relay`` or ``store``): what a server that
    only acknowledges and relays (and, with ``store``, appends to SQLite) costs."""
    with tempfile.TemporaryDirectory(prefix="bench-collab-floor-") as data_dir:
        server, ports = start_server("bench._relay_floor", mode, data_dir)
        try:
            return trio.run(replay, ports, trace, server.pid, False)
        finally:
            stop_server(server)


# ------------------------------------------------------------------------------ latency


@dataclass
class LatencyOutcome:
    edits: int
    latencies_ms: list[float]
    converged: bool
    server_cpu_s: float
    client_cpu_s: float


async def typing_latency(ports: dict[str, int], seconds: float, server_pid: int) -> LatencyOutcome:
    room = await create_room(ports["rooms"])
    ids = [EDITOR_CLIENT_BASE + n for n in range(EDITORS)]
    clients = [
        CollabClient(
            tcp_connector(HOST, ports["collab"]),
            language=LANGUAGE,
            room=room,
            user=f"editor{n}",
            client_id=client_id,
        )
        for n, client_id in enumerate(ids)
    ]
    sent: list[list[float]] = [[] for _ in clients]  # per editor: time of each edit, by clock
    seen = [[0] * EDITORS for _ in clients]  # per peer, per editor: clocks already counted
    latencies: list[float] = []
    changed = [trio.Event()]  # set on every remote change anywhere

    def listener(peer: int) -> Callable[[], None]:
        def on_change() -> None:
            now = time.perf_counter()
            changed[0].set()
            clocks = proto.decode_state_vector(clients[peer].replica.state_vector())
            for editor, client_id in enumerate(ids):
                if editor == peer:
                    continue
                upto = clocks.get(client_id, 0)
                for clock in range(seen[peer][editor], upto):
                    latencies.append((now - sent[editor][clock]) * 1000)
                seen[peer][editor] = max(seen[peer][editor], upto)

        return on_change

    async def type_for(editor: int, stop_at: float) -> None:
        rng = random.Random(SEED + editor)
        client = clients[editor]
        while True:
            await trio.sleep(rng.uniform(*TYPE_INTERVAL_S))
            if time.perf_counter() >= stop_at:
                return
            shown = client.view()
            position = rng.randint(0, len(shown))
            sent[editor].append(time.perf_counter())
            client.insert(position, rng.choice(ALPHABET))

    def settled() -> bool:
        texts = {client.text for client in clients}
        wanted = {client_id: len(sent[n]) for n, client_id in enumerate(ids)}
        return len(texts) == 1 and all(
            proto.decode_state_vector(client.replica.state_vector()).get(cid, 0) >= clock
            for client in clients
            for cid, clock in wanted.items()
        )

    converged = False
    async with trio.open_nursery() as nursery:
        for peer, client in enumerate(clients):
            await nursery.start(client.run)
            client.add_listener(listener(peer))
        cpu_server, cpu_clients = cpu_seconds(server_pid), time.process_time()
        stop_at = time.perf_counter() + seconds
        async with trio.open_nursery() as typing:
            for editor in range(EDITORS):
                typing.start_soon(type_for, editor, stop_at)
        with trio.move_on_after(SETTLE_TIMEOUT_S):
            while True:
                changed[0] = trio.Event()
                if settled():
                    break
                await changed[0].wait()
            for client in clients:
                await client.flush()
            converged = True
        server_cpu = cpu_seconds(server_pid) - cpu_server
        client_cpu = time.process_time() - cpu_clients
        observer = await RawEditor.connect(ports["collab"], room, "observer", 1)
        nursery.start_soon(observer.read)
        converged = converged and await server_text(observer) == clients[0].text
        nursery.cancel_scope.cancel()
    await observer.conn.aclose()
    edits = sum(len(times) for times in sent)
    converged = converged and len(latencies) == edits * (EDITORS - 1)
    return LatencyOutcome(edits, latencies, converged, server_cpu, client_cpu)


# ------------------------------------------------------------------------------ main


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    operations = 10_000 if args.quick else 100_000
    typing_seconds = 5.0 if args.quick else 20.0

    started = time.perf_counter()
    trace = generate_trace(operations)
    print(
        f"trace: {trace.updates} single-character operations (updates) from 2 clients in "
        f"{len(trace.rounds)} rounds, final text {len(trace.final_text)} characters; "
        f"generated in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    each = [bare_apply(trace, per_burst=False) for _ in range(3)]
    burst = [bare_apply(trace, per_burst=True) for _ in range(3)]
    bare_each, bare_burst = min(s for s, _ in each), min(s for s, _ in burst)
    cores = [core_apply(trace) for _ in range(3)]
    core = min(s for s, _ in cores)
    bare_ok = all(text == trace.final_text for _, text in each + burst + cores)
    bare = min(bare_each, bare_burst)
    print(
        f"baseline: bare pycrdt apply, best of 3: {bare_each:.3f} s CPU one transaction per "
        f"update, {bare_burst:.3f} s one per burst (baseline {bare:.3f} s); the server's "
        f"document core alone: {core:.3f} s = {core / bare:.2f} x bare; texts ok: {bare_ok}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-collab-") as data_dir:
        server, ports = start_server("bench.collab", data_dir)
        try:
            outcome = trio.run(replay, ports, trace, server.pid)
            ratio = outcome.server_cpu_s / bare
            print(
                f"server: {trace.updates} updates in {outcome.frames} frames replayed in "
                f"{outcome.seconds:.2f} s ({trace.updates / outcome.seconds:.0f} updates/s); "
                f"server CPU {outcome.server_cpu_s:.3f} s = {ratio:.2f} x bare; "
                f"converged: {outcome.converged}; errors: {outcome.errors[:3] or 'none'}",
                flush=True,
            )
            latency = trio.run(typing_latency, ports, typing_seconds, server.pid)
        finally:
            stop_server(server)
    floors = {mode: floor_replay(trace, mode) for mode in ("relay", "store")}
    for mode, floor in floors.items():
        what = "acknowledges and relays" + (", appending to SQLite" if mode == "store" else "")
        print(
            f"floor ({mode}): a Trio server that only {what}: CPU {floor.server_cpu_s:.3f} s "
            f"= {floor.server_cpu_s / bare:.2f} x bare "
            f"({floor.server_cpu_s / floor.frames * 1e6:.0f} us per frame); "
            f"converged: {floor.converged}",
            flush=True,
        )
    samples = latency.latencies_ms or [float("inf")]
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    print(
        f"latency: {EDITORS} editors typing for {typing_seconds:.0f} s: {latency.edits} edits, "
        f"{len(latency.latencies_ms)} edit-to-peer samples, p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {percentile(samples, 1.0):.1f} ms; converged: {latency.converged}; "
        f"server CPU {latency.server_cpu_s / typing_seconds:.0%}, "
        f"clients' CPU {latency.client_cpu_s / typing_seconds:.0%}",
        flush=True,
    )
    converged = (
        outcome.converged
        and bare_ok
        and latency.converged
        and not outcome.errors
        and all(floor.converged and not floor.errors for floor in floors.values())
    )
    met = converged and ratio <= TARGET_COST_X_BARE and p99 < TARGET_P99_MS
    print(
        result_line(
            "collab",
            ops=trace.updates,
            frames=outcome.frames,
            replay_s=outcome.seconds,
            server_cpu_s=outcome.server_cpu_s,
            bare_apply_s=bare,
            bare_per_update_s=bare_each,
            server_cost_x_bare=ratio,
            cost_target=TARGET_COST_X_BARE,
            core_cost_x_bare=core / bare,
            server_cpu_us_per_frame=outcome.server_cpu_s / outcome.frames * 1e6,
            floor_relay_x_bare=floors["relay"].server_cpu_s / bare,
            floor_store_x_bare=floors["store"].server_cpu_s / bare,
            editors=EDITORS,
            edits=latency.edits,
            p50_ms=p50,
            p99_ms=p99,
            p99_target_ms=TARGET_P99_MS,
            converged=converged,
            target_met=met,
        )
    )
    return 0


if __name__ == "__main__":
    bench_main(main, "collab")
