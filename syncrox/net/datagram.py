"""The datagram edge: one interface over a real UDP socket and the emulated network.

``receive_batch`` returns every datagram already waiting (up to ``MAX_BATCH``) in one call,
so a busy receiver pays for one wake-up per batch rather than per datagram; ``send`` is
best-effort like UDP itself. ``UdpTransport`` drives a non-blocking stdlib socket through
``trio.lowlevel.wait_readable``/``wait_writable`` and checkpoints once per batch, so other
tasks still run while data streams in.
"""

from __future__ import annotations

import errno
import socket
from typing import Protocol

import trio

from syncrox.protocol.rudp.packets import MAX_DATAGRAM_BYTES

Address = tuple[str, int]
MAX_BATCH = 64
SOCKET_BUFFER_BYTES = 4 << 20  # asked for; the kernel caps it at net.core.[rw]mem_max
# Errors a UDP socket reports for an earlier datagram (an ICMP "port unreachable"): the
# datagram is lost, nothing more.
_TRANSIENT = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})


class DatagramTransport(Protocol):
    local_address: Address

    async def receive_batch(self) -> list[tuple[bytes, Address]]: ...

    async def send(self, data: bytes, address: Address) -> None: ...

    def close(self) -> None: ...


class UdpTransport:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        name = sock.getsockname()
        self.local_address: Address = (str(name[0]), int(name[1]))
        self.send_errors = 0

    @classmethod
    def bind(cls, host: str, port: int) -> UdpTransport:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def receive_batch(self) -> list[tuple[bytes, Address]]:
        batch: list[tuple[bytes, Address]] = []
        waited = False
        while len(batch) < MAX_BATCH:
            try:
                data, address = self._sock.recvfrom(MAX_DATAGRAM_BYTES + 1)
            except BlockingIOError:
                if batch:
                    break
                await trio.lowlevel.wait_readable(self._sock)
                waited = True
                continue
            except OSError as exc:
                if exc.errno in _TRANSIENT:
                    continue
                raise
            batch.append((data, (str(address[0]), int(address[1]))))
        if not waited:
            await trio.lowlevel.checkpoint()
        return batch

    async def send(self, data: bytes, address: Address) -> None:
        while True:
            try:
                self._sock.sendto(data, address)
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
            except OSError as exc:
                if exc.errno not in _TRANSIENT and exc.errno != errno.EMSGSIZE:
                    raise
                self.send_errors += 1
                return

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
