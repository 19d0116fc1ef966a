"""Network emulation for UDP: loss, burst loss, delay, jitter, duplication, reordering and a
bandwidth cap, seeded and reproducible. This kernel has no ``sch_netem``, so it is ours.

Three layers:

* ``Link`` is pure: given ``now`` and a datagram's size it decides the datagram's fate, a
  list of delivery times (empty: lost; two: duplicated). Burst loss is a Gilbert-Elliott
  chain (a *good* state with loss ``loss`` and a *bad* state with loss ``burst_loss``).
  Reordering holds a datagram back ``reorder_ms`` longer so later ones overtake it. The
  bandwidth cap serialises datagrams through a queue of ``queue_bytes``; beyond it they are
  tail-dropped, like a router's buffer.
* ``DelayQueue`` and ``EmulatedNetwork`` move datagrams in Trio time (real or ``MockClock``
  virtual time): ``EmulatedNetwork`` joins in-process endpoints; ``EmulatedPath`` wraps a
  real transport so a client's own datagrams suffer the emulation.
* ``run_proxy`` is the ``syncrox-trio netem`` UDP proxy between real peers.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from dataclasses import dataclass, field

import trio

from syncrox.errors import ConfigError
from syncrox.logs import log_event
from syncrox.net.datagram import MAX_BATCH, Address, DatagramTransport, UdpTransport

logger = logging.getLogger("syncrox.netem")


@dataclass(frozen=True)
class NetemConfig:
    loss: float = 0.0  # probability in the good state
    burst_enter: float = 0.0  # Gilbert-Elliott: P(good -> bad) per datagram
    burst_exit: float = 0.3  # P(bad -> good) per datagram
    burst_loss: float = 1.0  # loss probability in the bad state
    delay_ms: float = 0.0  # one way
    jitter_ms: float = 0.0  # uniform extra delay 0..jitter
    duplicate: float = 0.0
    reorder: float = 0.0  # probability a datagram is held back by reorder_ms
    reorder_ms: float = 5.0
    rate_bytes_per_s: float = 0.0  # 0: unlimited
    queue_bytes: int = 1 << 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("loss", "burst_enter", "burst_exit", "burst_loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"netem {name} must be a probability 0..1")
        for name in ("delay_ms", "jitter_ms", "reorder_ms", "rate_bytes_per_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"netem {name} must be a finite number >= 0")

    @property
    def active(self) -> bool:
        return self != NetemConfig(seed=self.seed)

    def reversed(self) -> NetemConfig:
        """The same impairments for the other direction, from an independent random stream."""
        return NetemConfig(**{**self.__dict__, "seed": self.seed + 1_000_003})


@dataclass
class LinkStats:
    datagrams: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    queue_drops: int = 0


class Link:
    """One direction of an emulated path. Pure: no clock, no I/O."""

    def __init__(self, config: NetemConfig) -> None:
        self.config = config
        self.stats = LinkStats()
        self._rng = random.Random(config.seed)
        self._bad = False
        self._free_at = 0.0  # when the bandwidth-capped link finishes its queue

    def schedule(self, now: float, size: int) -> list[float]:
        config, rng = self.config, self._rng
        self.stats.datagrams += 1
        if self._lost(rng):
            self.stats.lost += 1
            return []
        copies = 2 if config.duplicate and rng.random() < config.duplicate else 1
        self.stats.duplicated += copies - 1
        times = []
        for _ in range(copies):  # a duplicate takes its own share of the bandwidth
            depart = self._depart(now, size)
            if depart is None:
                self.stats.queue_drops += 1
            else:
                times.append(depart + self._delay_s(rng))
        return times

    def _depart(self, now: float, size: int) -> float | None:
        """When the datagram leaves the bandwidth cap's queue; ``None``: tail-dropped."""
        rate = self.config.rate_bytes_per_s
        if rate <= 0:
            return now
        backlog_bytes = max(self._free_at - now, 0.0) * rate
        if backlog_bytes + size > self.config.queue_bytes:
            return None
        self._free_at = max(self._free_at, now) + size / rate
        return self._free_at

    def _lost(self, rng: random.Random) -> bool:
        config = self.config
        if config.burst_enter:
            flip = config.burst_exit if self._bad else config.burst_enter
            if rng.random() < flip:
                self._bad = not self._bad
            if self._bad:
                return rng.random() < config.burst_loss
        return bool(config.loss) and rng.random() < config.loss

    def _delay_s(self, rng: random.Random) -> float:
        config = self.config
        delay_ms = config.delay_ms
        if config.jitter_ms:
            delay_ms += rng.random() * config.jitter_ms
        if config.reorder and rng.random() < config.reorder:
            self.stats.reordered += 1
            delay_ms += config.reorder_ms
        return delay_ms / 1000.0


# --------------------------------------------------------------------------- Trio time


# Trio sleeps in epoll, and Python rounds an epoll timeout *up* to whole milliseconds: a
# sleep until a deadline wakes on average ~1 ms late (measured here: 1.06 ms), which would
# stretch a 10 ms emulated RTT to ~12 ms. A queue over real sockets therefore sleeps only
# until this long before its next delivery and yields (letting every other task run) for
# the rest. Never with a virtual clock: yielding does not advance ``MockClock``. The cost:
# with steady traffic a real-time queue keeps its event loop busy for up to 1.5 ms before
# each delivery (the CLI proxy and ``--loss``/``--delay`` clients burn CPU to be exact).
REAL_TIME_SPIN_S = 0.0015
# Datagrams one queue holds at most (Linux netem's ``limit`` is 1000): without a rate cap
# nothing else bounds what a long delay holds, and a sender faster than the delay would
# grow it without end. Beyond it a datagram is dropped and counted as a queue drop.
QUEUE_LIMIT = 10_000


class DelayQueue:
    """Items that become available at given Trio times; ``get_due`` waits for them.
    ``real_time=True`` (queues in front of real sockets) delivers on time to within a few
    tens of microseconds instead of the event loop's millisecond timer."""

    def __init__(self, *, real_time: bool = False, limit: int = QUEUE_LIMIT) -> None:
        self._heap: list[tuple[float, int, bytes, Address]] = []
        self._limit = limit
        self._counter = itertools.count()
        self._wakeup = trio.Event()
        self._spin_s = REAL_TIME_SPIN_S if real_time else 0.0

    def put(self, when: float, data: bytes, address: Address) -> bool:
        """Queue ``data`` for ``when``; ``False`` if the queue is full and it was dropped."""
        if len(self._heap) >= self._limit:
            return False
        heapq.heappush(self._heap, (when, next(self._counter), data, address))
        self._wakeup.set()
        return True

    async def get_due(self) -> list[tuple[bytes, Address]]:
        while True:
            now = trio.current_time()
            if self._heap and self._heap[0][0] <= now:
                due: list[tuple[bytes, Address]] = []
                while self._heap and self._heap[0][0] <= now and len(due) < MAX_BATCH:
                    _, _, data, address = heapq.heappop(self._heap)
                    due.append((data, address))
                await trio.lowlevel.checkpoint()
                return due
            deadline = self._heap[0][0] if self._heap else math.inf
            if deadline - now <= self._spin_s:
                await trio.lowlevel.checkpoint()
                continue
            self._wakeup = trio.Event()
            with trio.move_on_at(deadline - self._spin_s):
                await self._wakeup.wait()


@dataclass
class EmulatedNetwork:
    """In-process endpoints joined by emulated links (one ``Link`` per direction)."""

    config: NetemConfig = field(default_factory=NetemConfig)
    endpoints: dict[Address, EmulatedEndpoint] = field(default_factory=dict)
    links: dict[tuple[Address, Address], Link] = field(default_factory=dict)
    _ports: itertools.count[int] = field(default_factory=lambda: itertools.count(40000))

    def endpoint(self, host: str = "10.0.0.1") -> EmulatedEndpoint:
        address = (host, next(self._ports))
        endpoint = EmulatedEndpoint(self, address)
        self.endpoints[address] = endpoint
        return endpoint

    def link(self, source: Address, destination: Address) -> Link:
        key = (source, destination)
        if key not in self.links:
            seed = self.config.seed * 7919 + len(self.links)
            self.links[key] = Link(NetemConfig(**{**self.config.__dict__, "seed": seed}))
        return self.links[key]

    def route(self, source: Address, destination: Address, data: bytes) -> None:
        target = self.endpoints.get(destination)
        if target is None or target.closed:
            return  # like UDP: nobody listening, the datagram vanishes
        now = trio.current_time()
        link = self.link(source, destination)
        for when in link.schedule(now, len(data)):
            link.stats.queue_drops += not target.inbox.put(when, data, source)


class EmulatedEndpoint:
    """A ``DatagramTransport`` on an ``EmulatedNetwork``."""

    def __init__(self, network: EmulatedNetwork, address: Address) -> None:
        self.network = network
        self.local_address = address
        self.inbox = DelayQueue()
        self.closed = False

    async def receive_batch(self) -> list[tuple[bytes, Address]]:
        return await self.inbox.get_due()

    async def send(self, data: bytes, address: Address) -> None:
        self.network.route(self.local_address, address, data)

    def close(self) -> None:
        self.closed = True


class EmulatedPath:
    """Wraps a real transport so what it sends and receives goes through emulated links.
    ``run`` must be started (``nursery.start``) before the path is used."""

    def __init__(self, inner: DatagramTransport, config: NetemConfig) -> None:
        self.inner = inner
        self.local_address = inner.local_address
        self.uplink, self.downlink = Link(config), Link(config.reversed())
        self._outgoing = DelayQueue(real_time=True)
        self._incoming = DelayQueue(real_time=True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_batches, self.inner, self.downlink, self._incoming)
            nursery.start_soon(self._send_due)
            task_status.started()

    async def _send_due(self) -> None:
        while True:
            for data, address in await self._outgoing.get_due():
                await self.inner.send(data, address)

    async def receive_batch(self) -> list[tuple[bytes, Address]]:
        return await self._incoming.get_due()

    async def send(self, data: bytes, address: Address) -> None:
        for when in self.uplink.schedule(trio.current_time(), len(data)):
            self.uplink.stats.queue_drops += not self._outgoing.put(when, data, address)

    def close(self) -> None:
        self.inner.close()


async def _pump_batches(transport: DatagramTransport, link: Link, queue: DelayQueue) -> None:
    while True:
        batch = await transport.receive_batch()
        now = trio.current_time()
        for data, address in batch:
            _relay(link, queue, now, data, address)


# --------------------------------------------------------------------------- UDP proxy

# The proxy gives each client address its own upstream socket (so replies find their way
# back) and its own pair of links. Both are bounded: a port scan or spoofed sources must
# not exhaust the proxy's file descriptors, and a client that went away gives its socket
# back once it has been silent this long.
MAX_PROXY_CLIENTS = 256
PROXY_CLIENT_IDLE_S = 120.0


@dataclass
class _Upstream:
    """One client's way to the forward address and back."""

    client: Address
    path: EmulatedPath  # its uplink: client -> forward
    downlink: Link  # forward -> client
    last_seen: float
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def close(self) -> None:
        self.scope.cancel()
        self.path.close()


async def run_proxy(
    listen: Address,
    forward: Address,
    config: NetemConfig,
    *,
    task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Forward datagrams between clients of ``listen`` and ``forward``, impaired both ways.
    Each client gets its own upstream socket and links, seeded ``seed``, ``seed + 1``, ...
    in the order clients first send (so a run with one client is reproducible). Only
    datagrams from ``forward`` are relayed back: anyone else's are dropped."""
    target = await _resolve(forward)
    front = UdpTransport.bind(*listen)
    upstreams: dict[Address, _Upstream] = {}
    to_clients = DelayQueue(real_time=True)
    arrivals = itertools.count()
    refused = 0
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_deliver, to_clients, front)
            nursery.start_soon(_expire_idle, upstreams)
            log_event(logger, "netem.start", listen=front.local_address, forward=target)
            task_status.started(front.local_address)
            while True:
                for data, client in await front.receive_batch():
                    upstream = upstreams.get(client)
                    if upstream is None:
                        if len(upstreams) >= MAX_PROXY_CLIENTS:
                            refused += 1
                            if refused % 1000 == 1:
                                log_event(logger, "netem.too_many_clients", logging.WARNING,
                                          limit=MAX_PROXY_CLIENTS, dropped=refused)  # fmt: skip
                            continue
                        upstream = _open_upstream(client, target, config, next(arrivals))
                        await nursery.start(_serve_upstream, upstream, target, to_clients)
                        upstreams[client] = upstream
                    upstream.last_seen = trio.current_time()
                    await upstream.path.send(data, target)
    finally:
        front.close()
        for upstream in upstreams.values():
            upstream.close()


async def _resolve(address: Address) -> Address:
    """The forward address as numbers, once: a name is not looked up per datagram, and a
    name that does not resolve is refused before the proxy says it runs."""
    host, port = address
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConfigError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    # An IPv4 address first, when the name has one: "localhost" is often ::1 first, while
    # our servers listen on 127.0.0.1 by default.
    ipv4 = [info for info in infos if info[0] == trio.socket.AF_INET]
    sockaddr = (ipv4 or infos)[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


def _open_upstream(client: Address, target: Address, config: NetemConfig, index: int) -> _Upstream:
    ipv6 = ":" in target[0]
    # The upstream only talks to ``target``: on loopback it need not listen beyond it.
    loopback = target[0] == "::1" or target[0].startswith("127.")
    host = ("::1" if ipv6 else "127.0.0.1") if loopback else ("::" if ipv6 else "0.0.0.0")  # noqa: S104
    uplink_config = NetemConfig(**{**config.__dict__, "seed": config.seed + index})
    path = EmulatedPath(UdpTransport.bind(host, 0), uplink_config)
    return _Upstream(client, path, Link(uplink_config.reversed()), trio.current_time())


async def _serve_upstream(
    upstream: _Upstream,
    target: Address,
    to_clients: DelayQueue,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with upstream.scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(upstream.path._send_due)
            task_status.started()
            while True:
                batch = await upstream.path.inner.receive_batch()
                now = trio.current_time()
                for data, source in batch:
                    if source == target:  # anyone else's datagram never reaches our client
                        _relay(upstream.downlink, to_clients, now, data, upstream.client)


def _relay(link: Link, queue: DelayQueue, now: float, data: bytes, address: Address) -> None:
    for when in link.schedule(now, len(data)):
        link.stats.queue_drops += not queue.put(when, data, address)


async def _expire_idle(upstreams: dict[Address, _Upstream]) -> None:
    while True:
        await trio.sleep(PROXY_CLIENT_IDLE_S / 4)
        horizon = trio.current_time() - PROXY_CLIENT_IDLE_S
        for client, upstream in list(upstreams.items()):
            if upstream.last_seen < horizon:
                upstream.close()
                del upstreams[client]


async def _deliver(queue: DelayQueue, transport: DatagramTransport) -> None:
    while True:
        for data, address in await queue.get_due():
            await transport.send(data, address)
