"""Running jobs in Docker containers from Trio: phases, wall time, cleanup, the warm pool.

Theory of operation
-------------------
``open_sandbox(config)`` yields a ``Sandbox`` whose background tasks (the pool keeper and the
reaper) live in a nursery of their own. ``Sandbox.run(job)``:

1. gets an engine connection, probing at most every ``engine_retry_interval_s`` while the
   engine is unreachable (then the answer is SANDBOX_UNAVAILABLE with the reason);
2. takes a container from the warm pool, or starts one (every flag: ``engine.container_options``);
3. runs the compile phase, if the language has one, then the run phase: each is one
   ``docker exec`` of the driver (``driver.py``) whose stdin carries the code and the program's
   stdin, inside ``trio.move_on_after(limit)``. Blocking socket reads and writes run in worker
   threads that may be abandoned on cancellation; the stream is then shut down, which ends them;
4. destroys the container: after a normal end the reaper removes it (off the reply's path);
   after a timeout, an error or a cancellation (caller gone, server shutting down) it is
   removed at once, under a shield. When the sandbox closes, every container it created is
   removed, and a sweep by owner label catches any whose creation raced with the shutdown.

Blocking engine calls other than the stream I/O are not abandoned: they return within the
SDK's ``docker_api_timeout_s``. Creating a container and opening an exec are shielded, so
their result (a container to remove, a stream to close) is never lost to a cancellation.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

from syncrox.config import SandboxConfig
from syncrox.errors import ProtocolError
from syncrox.logs import log_event
from syncrox.sandbox import driver, languages
from syncrox.sandbox.engine import OWNER_LABEL, SANDBOX_LABEL, Engine, EngineError, ExecStream
from syncrox.sandbox.model import (
    ExecResult,
    Job,
    Limits,
    Phase,
    PhaseOutcome,
    Verdict,
    decide,
    unavailable,
)
from syncrox.sandbox.pool import Box, WarmPool
from syncrox.sandbox.streams import Demuxer

logger = logging.getLogger("syncrox.sandbox")

T = TypeVar("T")

ENGINE_THREADS = 32
CLEANUP_LIMIT_S = 20.0
PROBE_LIMIT_S = 5.0
# A pooled container must have at least this much life left beyond a job's two phases.
POOL_MARGIN_S = 30.0


def default_owner() -> str:
    """Label value naming this sandbox instance: host, process and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Sandbox:
    def __init__(self, config: SandboxConfig, *, owner: str | None = None) -> None:
        self.config = config
        self.owner = owner or default_owner()
        self.limits = Limits(
            config.compile_time_limit_s,
            config.run_time_limit_s,
            config.memory_limit_bytes,
            config.output_limit_bytes,
        )
        self.pool = WarmPool(
            config.pool_size,
            config.container_lifetime_s
            - config.compile_time_limit_s
            - config.run_time_limit_s
            - POOL_MARGIN_S,
        )
        self.reason = "the engine has not been probed yet"
        self._engine: Engine | None = None
        self._last_probe = -math.inf
        self._probe_lock = trio.Lock()
        self._limiter = trio.CapacityLimiter(ENGINE_THREADS)
        self._retired_engines: list[Engine] = []
        self._live: dict[str, Box] = {}
        self._reap_send, self._reap_receive = trio.open_memory_channel[tuple[Engine, Box]](math.inf)

    # ------------------------------------------------------------------ public

    @property
    def available(self) -> bool:
        return self._engine is not None

    async def probe(self) -> bool:
        """Connect now if not connected (rate-limited); ``True`` if the engine is usable."""
        return await self._engine_or_none() is not None

    def warm_up(self) -> None:
        """Let the warm pool fill: someone is about to run code."""
        self.pool.want()

    async def run(self, job: Job) -> ExecResult:
        self.pool.want()
        engine = await self._engine_or_none()
        if engine is None:
            return unavailable(self.reason)
        try:
            async with self._container(engine) as box:
                result = await self._run_phases(engine, box, job)
        except EngineError as exc:
            self._lost_engine(str(exc))
            return unavailable(str(exc))
        log_event(
            logger,
            "job.done",
            language=job.language.value,
            verdict=result.verdict.value,
            compile_ms=result.compile_ms,
            run_ms=result.run_ms,
            pooled=box.pooled,
        )
        return result

    def live_containers(self) -> list[str]:
        return list(self._live)

    # ------------------------------------------------------------------ engine

    async def _thread(self, fn: Callable[..., T], *args: object, abandon: bool = False) -> T:
        return await trio.to_thread.run_sync(
            functools.partial(fn, *args), abandon_on_cancel=abandon, limiter=self._limiter
        )

    async def _engine_or_none(self) -> Engine | None:
        if self._engine is not None:
            return self._engine
        async with self._probe_lock:
            now = trio.current_time()
            if (
                self._engine is None
                and now - self._last_probe >= self.config.engine_retry_interval_s
            ):
                self._last_probe = now
                await self._connect()
        return self._engine

    async def _connect(self) -> None:
        try:
            engine = await self._thread(Engine.connect, self.config)
        except EngineError as exc:
            self.reason = str(exc)
            log_event(logger, "engine.unavailable", logging.WARNING, reason=self.reason)
            return
        try:
            image_id, version = await self._thread(engine.image_info, self.config.image)
            reason = (
                f"image {self.config.image} is not in the engine; "
                "build it with `syncrox-trio sandbox build`"
            )
        except EngineError as exc:
            image_id, version, reason = None, None, str(exc)
        if image_id is None:
            self.reason = reason
            log_event(logger, "engine.no_image", logging.WARNING, reason=reason)
            await self._thread(engine.close)
            return
        self._engine = engine
        log_event(logger, "engine.ready", image=self.config.image, version=version)
        await self._sweep_dead_owners(engine)

    def _lost_engine(self, reason: str) -> None:
        """After a failed call, probe again on the next job instead of trusting the engine."""
        self.reason = reason
        log_event(logger, "engine.error", logging.WARNING, reason=reason)
        if self._engine is not None:
            self._retired_engines.append(self._engine)
        self._engine = None
        self._last_probe = -math.inf

    # ------------------------------------------------------------------ containers

    async def _create(self, engine: Engine) -> Box:
        name = f"syncrox-sbx-{secrets.token_hex(6)}"
        labels = {SANDBOX_LABEL: "1", OWNER_LABEL: self.owner}
        # Shielded: a creation abandoned half-way would leave a container nobody knows of.
        # The call is bounded by the SDK's timeout; a pending cancellation strikes at the
        # caller's next checkpoint, when the box is already registered for removal.
        with trio.CancelScope(shield=True):
            container_id = await self._thread(engine.create_container, name, labels)
        box = Box(container_id, name, trio.current_time())
        self._live[container_id] = box
        return box

    async def _create_for_pool(self) -> Box | None:
        engine = await self._engine_or_none()
        if engine is None:
            return None
        try:
            return await self._create(engine)
        except EngineError as exc:
            self._lost_engine(str(exc))
            return None

    @asynccontextmanager
    async def _container(self, engine: Engine) -> AsyncIterator[Box]:
        box = self.pool.take() or await self._create(engine)
        handed_off = False
        try:
            yield box
            handed_off = self._reap_later(engine, box)
        finally:
            if not handed_off:
                with trio.CancelScope(shield=True):
                    await self._destroy(engine, box)

    def _reap_later(self, engine: Engine, box: Box) -> bool:
        try:
            self._reap_send.send_nowait((engine, box))
        except (trio.ClosedResourceError, trio.WouldBlock):
            return False
        return True

    def _retire(self, box: Box) -> None:
        engine = self._engine
        if engine is None or not self._reap_later(engine, box):
            log_event(logger, "container.unreaped", logging.WARNING, container=box.name)

    async def _destroy(self, engine: Engine, box: Box) -> None:
        with trio.move_on_after(CLEANUP_LIMIT_S) as scope:
            try:
                await self._thread(engine.remove_container, box.container_id, abandon=True)
            except EngineError as exc:
                log_event(logger, "container.remove_failed", logging.WARNING, reason=str(exc))
                return
            self._live.pop(box.container_id, None)
        if scope.cancelled_caught:
            log_event(logger, "container.remove_slow", logging.WARNING, container=box.name)

    async def _reaper(self) -> None:
        async for engine, box in self._reap_receive:
            await self._destroy(engine, box)

    async def close(self) -> None:
        """Remove every container this sandbox created (call shielded, at shutdown)."""
        leftovers = {box.container_id: box for box in self.pool.drain()} | dict(self._live)
        engine = self._engine
        if engine is None and leftovers:
            self._last_probe = -math.inf
            engine = await self._engine_or_none()
        if engine is not None:
            async with trio.open_nursery() as nursery:
                for box in leftovers.values():
                    nursery.start_soon(self._destroy, engine, box)
            with trio.move_on_after(CLEANUP_LIMIT_S):
                await self._sweep(engine, lambda owner: owner == self.owner)
        elif leftovers:
            log_event(logger, "containers.left", logging.WARNING, count=len(leftovers))
        for each in [*self._retired_engines, *([engine] if engine else [])]:
            await self._thread(each.close)
        self._retired_engines.clear()
        self._engine = None

    async def _sweep_dead_owners(self, engine: Engine) -> None:
        """Remove containers left by a SyncroX process on this host that no longer runs."""
        with trio.move_on_after(CLEANUP_LIMIT_S):
            await self._sweep(engine, _owner_is_dead)

    async def _sweep(self, engine: Engine, doomed: Callable[[str], bool]) -> None:
        try:
            found = await self._thread(engine.list_containers, {SANDBOX_LABEL: "1"})
        except EngineError as exc:
            log_event(logger, "sweep.failed", logging.WARNING, reason=str(exc))
            return
        for container_id, labels in found:
            if doomed(labels.get(OWNER_LABEL, "")):
                log_event(logger, "sweep.remove", container=container_id[:12])
                await self._destroy(engine, Box(container_id, container_id[:12], 0.0))

    # ------------------------------------------------------------------ phases

    async def _run_phases(self, engine: Engine, box: Box, job: Job) -> ExecResult:
        plan = languages.plan(job.language, job.code)
        cap, size = self.config.output_limit_bytes, len(job.code)
        compiled: PhaseOutcome | None = None
        argv = driver.compile_argv(plan, output_limit_bytes=cap, code_bytes=size)
        run_stdin = job.code + job.stdin
        if argv is not None:
            compiled = await self._phase(
                engine,
                box,
                Phase.COMPILE,
                argv=argv,
                stdin=job.code,
                limit_s=self.config.compile_time_limit_s,
            )
            if compiled.failed:
                return decide(compiled, None, self.limits)
            run_stdin = job.stdin
        argv = driver.run_argv(plan, output_limit_bytes=cap, code_bytes=size)
        ran = await self._phase(
            engine, box, Phase.RUN, argv=argv, stdin=run_stdin, limit_s=self.config.run_time_limit_s
        )
        return decide(compiled, ran, self.limits)

    async def _phase(
        self,
        engine: Engine,
        box: Box,
        phase: Phase,
        *,
        argv: Sequence[str],
        stdin: bytes,
        limit_s: float,
    ) -> PhaseOutcome:
        demux, duration_ms, timed_out, exit_code = await self._exec(
            engine, box, argv, stdin, limit_s
        )
        oom = bool(exit_code) and await self._oom_killed(engine, box)
        return PhaseOutcome(
            phase,
            duration_ms,
            exit_code,
            stdout=demux.stdout,
            stderr=demux.stderr,
            stdout_truncated=demux.stdout_truncated,
            stderr_truncated=demux.stderr_truncated,
            timed_out=timed_out,
            oom_killed=oom,
        )

    async def _exec(
        self, engine: Engine, box: Box, argv: Sequence[str], stdin: bytes, limit_s: float
    ) -> tuple[Demuxer, int, bool, int | None]:
        """One exec: ``(output, duration_ms, timed_out, exit_code or None)``."""
        demux = Demuxer(self.config.output_limit_bytes)
        with trio.CancelScope(shield=True):  # so the stream is always ours to close
            stream = await self._thread(engine.open_exec, box.container_id, list(argv))
        started = trio.current_time()
        exit_code: int | None = None
        try:
            await trio.lowlevel.checkpoint()  # a cancellation that came meanwhile
            with trio.move_on_after(limit_s) as deadline:
                await self._pump(stream, stdin, demux)
            duration_ms = round((trio.current_time() - started) * 1000)
            if not deadline.cancelled_caught and not demux.exceeded:
                exit_code = await self._thread(engine.exit_code, stream.exec_id)
        finally:
            stream.abort()
            with trio.CancelScope(shield=True):
                await self._thread(stream.close)
        return demux, duration_ms, deadline.cancelled_caught, exit_code

    async def _pump(self, stream: ExecStream, stdin: bytes, demux: Demuxer) -> None:
        """Write stdin and read output concurrently (a program may not read its stdin before
        writing lots of output); stop at the end of output or once a stream passes the cap."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(self._thread, stream.write_stdin, stdin, abandon=True)
            )
            while not demux.exceeded:
                chunk = await self._thread(stream.read_chunk, abandon=True)
                if not chunk:
                    break
                try:
                    demux.feed(chunk)
                except ProtocolError as exc:
                    raise EngineError(f"unreadable exec stream: {exc.message}") from None
            nursery.cancel_scope.cancel()

    async def _oom_killed(self, engine: Engine, box: Box) -> bool:
        """Whether the kernel OOM-killed anything in this (single-job) container."""
        argv = ["sh", "-c", driver.OOM_PROBE]
        demux, _, timed_out, _ = await self._exec(engine, box, argv, b"", PROBE_LIMIT_S)
        return not timed_out and driver.parse_oom_kills(demux.stdout) > 0


def _owner_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@asynccontextmanager
async def open_sandbox(
    config: SandboxConfig, *, owner: str | None = None
) -> AsyncIterator[Sandbox]:
    """A ``Sandbox`` with its pool keeper and reaper running; on exit (also by cancellation)
    every container it created is removed."""
    sandbox = Sandbox(config, owner=owner)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sandbox.probe)
            nursery.start_soon(sandbox._reaper)
            nursery.start_soon(
                sandbox.pool.keep_filled,
                sandbox._create_for_pool,
                sandbox._retire,
                config.engine_retry_interval_s,
            )
            yield sandbox
            nursery.cancel_scope.cancel()
    finally:
        sandbox._reap_send.close()
        with trio.CancelScope(shield=True):
            # Boxes still waiting for the reaper are in _live: close() removes them too.
            await sandbox.close()


__all__ = ["Sandbox", "Verdict", "open_sandbox"]
