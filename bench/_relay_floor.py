"""The least any collab server on this stack can do per frame: a floor for ``bench.collab``.

    python -m bench._relay_floor --serve relay|store DIR

A Trio TCP server that speaks just enough of the collab protocol for the benchmark's raw
editors (``CREATE`` -> ``ROOM``, ``HELLO`` -> ``OK HELLO``, ``OPEN`` -> ``OPENED``) and, for
every ``YMSG`` frame, acknowledges it to its sender and relays it verbatim to the other
connections. Nothing else: no document, no reading of the updates, no limits, no rooms, no
logging. ``store`` also appends each frame to SQLite (the store's pragmas: WAL,
``synchronous=NORMAL``; one transaction per frame, on the event loop thread, so no thread
hop) before acknowledging it, which is the least "persisted before acknowledged" can cost.

The benchmark replays its trace through this server exactly as through the real one and
reports its CPU against bare pycrdt: no server of this shape (Trio, TCP, one frame in, an
acknowledgement and a relay out) can cost less, so it shows which share of the real
server's cost is ours and which is the platform's. It is a measuring stick, never a
server: it trusts its peers completely. Not run by ``make bench`` (the name starts with
``_``); ``bench.collab`` starts it.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
from pathlib import Path

import trio

READ_BYTES = 65536


class _Peer:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.frames = 0
        self.sending = trio.Lock()  # the acknowledgement and a relay may meet

    async def line(self) -> bytes | None:
        while (end := self.buffer.find(b"\n")) < 0:
            if not await self._fill():
                return None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line

    async def body(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not await self._fill():
                return None
        body = bytes(self.buffer[:size])
        del self.buffer[:size]
        return body

    async def send(self, data: bytes) -> None:
        async with self.sending:
            await self.stream.send_all(data)

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(READ_BYTES)
        self.buffer += data
        return bool(data)


class RelayFloor:
    def __init__(self, database: sqlite3.Connection | None) -> None:
        self.database = database
        self.peers: list[_Peer] = []

    async def handle(self, stream: trio.SocketStream) -> None:
        peer = _Peer(stream)
        self.peers.append(peer)
        try:
            while (line := await peer.line()) is not None:
                if not await self._answer(peer, line.split()):
                    return
        finally:
            self.peers.remove(peer)

    async def _answer(self, peer: _Peer, words: list[bytes]) -> bool:
        match words:
            case [b"CREATE", *_]:
                await peer.send(b"ROOM 1000 floor\n")
            case [b"HELLO", *_]:
                await peer.send(b"OK HELLO floor\n")
            case [b"OPEN", language]:
                await peer.send(b"OPENED %s 1048576 1048576 1048576\n" % language)
            case [b"YMSG", size]:
                body = await peer.body(int(size))
                if body is None:
                    return False
                self._persist(body)
                peer.frames += 1
                await peer.send(b"ACK %d\n" % peer.frames)
                frame = b"YMSG %d\n%s" % (len(body), body)
                for other in [other for other in self.peers if other is not peer]:
                    await other.send(frame)
        return True

    def _persist(self, body: bytes) -> None:
        if self.database is None:
            return
        self.database.execute("BEGIN IMMEDIATE")
        self.database.execute("INSERT INTO updates (body) VALUES (?)", (body,))
        self.database.execute("COMMIT")


def open_database(data_dir: Path) -> sqlite3.Connection:
    database = sqlite3.connect(data_dir / "floor.sqlite3", isolation_level=None)
    database.execute("PRAGMA journal_mode=WAL")
    database.execute("PRAGMA synchronous=NORMAL")
    database.execute("CREATE TABLE updates (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    return database


def serve(mode: str, data_dir: Path) -> None:
    """Print ``{"rooms": port, "collab": port}`` (one port answers both) and serve."""
    database = open_database(data_dir) if mode == "store" else None
    floor = RelayFloor(database)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, floor.handle, 0, host="127.0.0.1")
            listeners = await nursery.start(serve)
            port = listeners[0].socket.getsockname()[1]
            print(json.dumps({"rooms": port, "collab": port}), flush=True)

    trio.run(main)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--serve" or sys.argv[2] not in ("relay", "store"):
        sys.exit("usage: python -m bench._relay_floor --serve relay|store DIR")
    serve(sys.argv[2], Path(sys.argv[3]))
