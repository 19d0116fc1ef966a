"""The warm pool: containers started ahead of time, each used for exactly one job.

Starting a container costs a few hundred milliseconds; an ``exec`` into a running one costs
tens. So the pool keeps ``size`` idle containers (``sleep`` as their only process, every limit
already applied). A job *takes* one, which removes it from the pool for good: it is destroyed
after that job, never given a second one (a used container keeps the files, processes and
budgets of its job). Taking wakes the keeper, which starts a replacement in the background,
one at a time so refilling never competes with running jobs for more than one core.

The pool starts filling only once it is *wanted* (the first client is admitted to the exec
service, or the first job arrives), so a server on which nobody runs code starts no container.

A container's main process exits by itself after ``container_lifetime_s`` (then the engine
removes it); the pool retires idle containers well before that, so a job always gets one with
enough life left for both its phases.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from syncrox.logs import log_event

logger = logging.getLogger("syncrox.sandbox")

RECHECK_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Box:
    """One sandbox container."""

    container_id: str
    name: str
    created_at: float  # trio.current_time() when it was started
    pooled: bool = False


CreateBox = Callable[[], Awaitable[Box | None]]
RetireBox = Callable[[Box], None]


class WarmPool:
    def __init__(self, size: int, max_idle_s: float) -> None:
        self.size = size
        self.max_idle_s = max_idle_s
        self._ready: deque[Box] = deque()
        self._changed = trio.Event()
        self._wanted = trio.Event()
        self._grew = trio.Event()

    def want(self) -> None:
        """Start filling (idempotent): the first client of code execution has arrived."""
        self._wanted.set()

    def __len__(self) -> int:
        return len(self._ready)

    def take(self) -> Box | None:
        """A ready container (now the caller's alone), or ``None`` if none is ready."""
        self._changed.set()
        if self._ready:
            return self._ready.popleft()
        return None

    async def wait_ready(self, count: int) -> None:
        """Until at least ``count`` containers are ready (for tests and benchmarks)."""
        while len(self._ready) < min(count, self.size):
            await self._grew.wait()

    def drain(self) -> list[Box]:
        """Every idle container (at shutdown); the pool is empty afterwards."""
        boxes = list(self._ready)
        self._ready.clear()
        return boxes

    async def keep_filled(self, create: CreateBox, retire: RetireBox, retry_s: float) -> None:
        """Run forever: top the pool up, retire old containers. ``create`` returns ``None``
        while the engine is unavailable; the keeper then retries after ``retry_s``."""
        if self.size <= 0:
            return
        await self._wanted.wait()
        while True:
            self._retire_old(retire)
            if len(self._ready) < self.size:
                box = await create()
                if box is None:
                    await trio.sleep(retry_s)
                    continue
                self._ready.append(Box(box.container_id, box.name, box.created_at, pooled=True))
                self._grew.set()
                self._grew = trio.Event()
                log_event(logger, "pool.ready", logging.DEBUG, idle=len(self._ready))
                continue
            with trio.move_on_after(RECHECK_INTERVAL_S):
                await self._changed.wait()
            self._changed = trio.Event()

    def _retire_old(self, retire: RetireBox) -> None:
        now = trio.current_time()
        while self._ready and now - self._ready[0].created_at > self.max_idle_s:
            box = self._ready.popleft()
            log_event(logger, "pool.retire", container=box.name)
            retire(box)
