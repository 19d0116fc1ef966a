"""The ``syncrox-trio netem`` UDP proxy between real sockets on 127.0.0.1: reproducible,
closed to strangers, bounded in clients and in what it queues."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from syncrox import netem
from syncrox.errors import ConfigError
from syncrox.net.datagram import Address, UdpTransport
from syncrox.netem import DelayQueue, Link, NetemConfig, run_proxy

HOST = "127.0.0.1"
IO_TIMEOUT_S = 20


class Echo:
    """A stand-in server: records what reaches it and answers each datagram with it."""

    def __init__(self) -> None:
        self.transport = UdpTransport.bind(HOST, 0)
        self.received: list[bytes] = []
        self.sources: set[Address] = set()

    async def run(self) -> None:
        while True:
            for data, source in await self.transport.receive_batch():
                self.received.append(data)
                self.sources.add(source)
                await self.transport.send(data, source)


@asynccontextmanager
async def proxy_to_echo(config: NetemConfig) -> AsyncIterator[tuple[Address, Echo]]:
    echo = Echo()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo.run)
        front = await nursery.start(
            functools.partial(run_proxy, (HOST, 0), echo.transport.local_address, config)
        )
        yield front, echo
        nursery.cancel_scope.cancel()
    echo.transport.close()


async def settle() -> None:
    await trio.sleep(0.3)  # every datagram delivered (no delay is configured)


async def test_the_same_seed_loses_the_same_datagrams() -> None:
    async def run_once() -> list[bytes]:
        client = UdpTransport.bind(HOST, 0)  # a new source port each run
        async with proxy_to_echo(NetemConfig(loss=0.3, seed=7)) as (front, echo):
            for i in range(200):
                await client.send(b"%d" % i, front)
            await settle()
            received = list(echo.received)
        client.close()
        return received

    with trio.fail_after(IO_TIMEOUT_S):
        first, second = await run_once(), await run_once()
    assert 100 < len(first) < 180
    assert first == second


async def test_only_the_server_reaches_the_client() -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        async with proxy_to_echo(NetemConfig(seed=1)) as (front, echo):
            client, stranger = UdpTransport.bind(HOST, 0), UdpTransport.bind(HOST, 0)
            await client.send(b"hello", front)
            await settle()
            [upstream] = echo.sources
            assert upstream[0] == HOST  # the upstream listens on loopback only
            await stranger.send(b"injected", upstream)
            await settle()
            with trio.move_on_after(0.3):
                while True:
                    for data, _ in await client.receive_batch():
                        assert data == b"hello"  # the echo, never the stranger's
            client.close()
            stranger.close()


async def test_clients_are_bounded_and_idle_ones_give_their_socket_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(netem, "MAX_PROXY_CLIENTS", 3)
    monkeypatch.setattr(netem, "PROXY_CLIENT_IDLE_S", 0.4)
    with trio.fail_after(IO_TIMEOUT_S):
        async with proxy_to_echo(NetemConfig(seed=1)) as (front, echo):
            clients = [UdpTransport.bind(HOST, 0) for _ in range(5)]
            for client in clients:
                await client.send(b"x", front)
            await settle()
            assert len(echo.received) == 3  # the fourth and fifth were dropped
            await trio.sleep(1.0)  # the three fall idle and are closed
            await clients[4].send(b"late", front)
            await settle()
            assert echo.received[-1] == b"late"
            for client in clients:
                client.close()


async def test_a_forward_name_that_does_not_resolve_is_refused_before_starting() -> None:
    with trio.fail_after(IO_TIMEOUT_S), pytest.raises(ConfigError, match="cannot resolve"):
        await run_proxy((HOST, 0), ("no-such-host.invalid", 9), NetemConfig())


def test_a_full_queue_drops_and_says_so() -> None:
    queue = DelayQueue(limit=2)
    assert queue.put(1.0, b"a", (HOST, 1)) and queue.put(1.0, b"b", (HOST, 1))
    assert queue.put(1.0, b"c", (HOST, 1)) is False


def test_a_duplicate_takes_its_own_share_of_the_bandwidth() -> None:
    link = Link(NetemConfig(duplicate=1.0, rate_bytes_per_s=1000.0, seed=1))
    first, second = link.schedule(0.0, 100)
    assert (first, second) == pytest.approx((0.1, 0.2))  # one after the other, at the cap


async def test_a_forward_name_goes_to_its_ipv4_address_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "localhost" often resolves to ::1 first, while the server listens on 127.0.0.1.
    async def dual_stack(*_args: object, **_kwargs: object) -> list[tuple[object, ...]]:
        return [
            (trio.socket.AF_INET6, trio.socket.SOCK_DGRAM, 17, "", ("::1", 9011, 0, 0)),
            (trio.socket.AF_INET, trio.socket.SOCK_DGRAM, 17, "", ("127.0.0.1", 9011)),
        ]

    monkeypatch.setattr(trio.socket, "getaddrinfo", dual_stack)
    assert await netem._resolve(("localhost", 9011)) == ("127.0.0.1", 9011)
