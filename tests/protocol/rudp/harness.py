"""Two connection cores joined by a fake network in virtual time (no Trio, no sockets).

``FakeNetwork`` drops, duplicates, delays and reorders datagrams from a seeded random
source; ``Pair`` runs a client and a server core over it, feeding each the other's datagrams
and firing their timers, exactly as the Trio edge would.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.rudp.codec import decode_datagram
from syncrox.protocol.rudp.connection import Connection, Direction, Limits, Offer, Role
from syncrox.protocol.rudp.events import TransferEvent
from syncrox.protocol.rudp.packets import Codec

SESSION = "0123456789abcdef0123456789abcdef"
ROOM = "4821"
NAME = "doc.pdf"


@dataclass
class FakeNetwork:
    rng: random.Random
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay_s: float = 0.005
    jitter_s: float = 0.0
    # Seconds each datagram occupies the link (0: infinitely fast), so bursts arrive spaced
    # out and the receiver acknowledges chunk by chunk, as in the textbook.
    spacing_s: float = 0.0
    drop: Callable[[str, bytes], bool] | None = None  # scripted losses
    in_flight: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    _counter: int = 0
    _link_free: dict[str, float] = field(default_factory=dict)

    def send(self, now: float, to: str, data: bytes) -> None:
        if self.drop is not None and self.drop(to, data):
            return
        if self.rng.random() < self.loss:
            return
        depart = max(now, self._link_free.get(to, now)) + self.spacing_s
        self._link_free[to] = depart
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            delay = depart - now + self.delay_s + self.rng.random() * self.jitter_s
            if self.rng.random() < self.reorder:
                delay += self.delay_s * 3 * self.rng.random()
            self._counter += 1
            heapq.heappush(self.in_flight, (now + delay, self._counter, to, data))

    def next_time(self) -> float | None:
        return self.in_flight[0][0] if self.in_flight else None

    def pop_due(self, now: float) -> list[tuple[str, bytes]]:
        due = []
        while self.in_flight and self.in_flight[0][0] <= now:
            _, _, to, data = heapq.heappop(self.in_flight)
            due.append((to, data))
        return due


def make_file(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass
class Pair:
    """A client and a server connection for one transfer of ``data``."""

    data: bytes
    direction: Direction
    network: FakeNetwork
    algo: str = "reno"
    codec: Codec = Codec.JSON
    mss: int = 1024
    limits: Limits = field(default_factory=lambda: Limits(max_retries=12))
    now: float = 0.0
    delivered: bytearray = field(default_factory=bytearray)
    events: list[TransferEvent] = field(default_factory=list)
    commit: bool = True

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.data).hexdigest()
        source = self._source
        upload = self.direction is Direction.UPLOAD
        self.client = Connection(
            role=Role.CLIENT, direction=self.direction, session_id=SESSION, room=ROOM,
            filename=NAME, limits=self.limits, now=0.0,
            size=len(self.data) if upload else 0, sha256=digest if upload else "",
            source=source if upload else None, offer=Offer(self.codec, self.algo, self.mss),
            on_event=self.events.append if upload else None,
        )  # fmt: skip
        self.server = Connection(
            role=Role.SERVER, direction=self.direction, session_id=SESSION, room=ROOM,
            filename=NAME, limits=self.limits, now=0.0, size=len(self.data), sha256=digest,
            source=None if upload else source, on_event=None if upload else self.events.append,
        )  # fmt: skip
        self.ends = {"client": self.client, "server": self.server}

    @property
    def sender(self) -> Connection:
        return self.client if self.direction is Direction.UPLOAD else self.server

    @property
    def receiver(self) -> Connection:
        return self.server if self.direction is Direction.UPLOAD else self.client

    def _source(self, seq: int) -> bytes:
        mss = self.sender.mss
        return self.data[(seq - 1) * mss : seq * mss]

    def start(self) -> None:
        self.client.connect(self.now)
        self.flush()

    def flush(self) -> None:
        for name, conn in self.ends.items():
            other = "server" if name == "client" else "client"
            for datagram in conn.datagrams_to_send(self.now):
                self.network.send(self.now, other, datagram)
        self.deliver_ready()

    def deliver_ready(self) -> None:
        for chunk in self.receiver.take_ready():
            self.delivered += chunk
        if self.receiver.state.value == "FIN_RCVD" and self.commit:
            assert hashlib.sha256(self.delivered).hexdigest() == self.receiver.sha256
            self.receiver.commit(self.now)

    def deliver(self, to: str, data: bytes) -> None:
        try:
            packet = decode_datagram(data)
        except RemoteProtocolError:  # pragma: no cover - our own datagrams always decode
            raise
        self.ends[to].receive(packet, self.now)

    def step(self) -> bool:
        """Advance to the next datagram or timer; ``False`` once nothing is left to do."""
        times = [t for t in (self.network.next_time(),) if t is not None]
        times += [t for c in self.ends.values() if (t := c.get_timer()) is not None]
        if not times:
            return False
        self.now = max(self.now, min(times))
        for to, data in self.network.pop_due(self.now):
            self.deliver(to, data)
        for conn in self.ends.values():
            timer = conn.get_timer()
            if timer is not None and timer <= self.now:
                conn.handle_timer(self.now)
        self.flush()
        return True

    def run(self, max_steps: int = 2_000_000) -> None:
        self.start()
        for _ in range(max_steps):
            if not self.step():
                return
        raise AssertionError("transfer did not finish")
