"""Code execution, TCP 9012: run room members' programs in the Docker sandbox.

A connection proves membership first (``HELLO <user> <room> [<token>]`` or ``AUTH <token>``,
checked by the room registry) and holds a presence in that room while open; everything it
runs or reads afterwards belongs to that room, so history never crosses rooms. ``RUN``
carries the language and two bodies (code, stdin); the reply carries the verdict, the
durations and three bodies (diag, stdout, stderr). The room's history keeps the code, the
outputs and the first ``exec.history_stdin_bytes`` of the stdin; ``SHOW`` sends them back.
The grammar is ``syncrox.protocol.exec``; containers, limits and verdicts are
``syncrox.sandbox``.

Load: at most ``exec.max_concurrent_runs`` jobs run at once, in arrival order; up to
``exec.max_queued_runs`` more wait; beyond that a request is answered ``ERR BUSY`` at once
(after its bodies were read, so the connection stays usable).

Decision: a client that disconnects while its job runs does not cancel it. The job finishes
within its limits, its container is destroyed as always, and the result lands in the room's
history, where the author (or a room-mate) finds it with ``HISTORY``; only the reply is lost.
A server shutdown, in contrast, cancels running jobs and destroys their containers.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from syncrox.config import ExecConfig
from syncrox.errors import (
    BUSY,
    NOT_FOUND,
    NOT_MEMBER,
    TIMEOUT,
    LocalProtocolError,
    RemoteProtocolError,
    StoreError,
)
from syncrox.logs import log_event
from syncrox.net.lines import LineConnection
from syncrox.net.tcp import line_loop, serve_tcp
from syncrox.protocol import exec as proto
from syncrox.protocol.framing import encode_line
from syncrox.sandbox.model import ExecResult, Job, Language, Verdict
from syncrox.sandbox.runner import Sandbox, open_sandbox
from syncrox.services.context import BoundPorts, ServiceContext
from syncrox.services.registry import Member
from syncrox.store.executions import ExecutionSummary, NewExecution

logger = logging.getLogger("syncrox.exec")


async def serve(
    ctx: ServiceContext, *, task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED
) -> None:
    config = ctx.config.exec
    # The sandbox encloses the server: on shutdown every connection (and the shielded
    # cleanup of its job's container) ends before the sandbox removes what is left.
    async with open_sandbox(config.sandbox) as sandbox:
        queue = RunQueue(config.max_concurrent_runs, config.max_queued_runs)

        async def handle_connection(conn: LineConnection) -> None:
            await ExecSession(ctx, sandbox, queue, conn).run()

        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                functools.partial(
                    serve_tcp,
                    handle_connection,
                    service="exec",
                    host=ctx.config.host,
                    port=ctx.config.ports.exec,
                    limits=ctx.config.tcp,
                )
            )
            task_status.started({"exec": port})


class RunQueue:
    """At most ``running`` jobs at once, first come first served, and ``waiting`` more."""

    def __init__(self, running: int, waiting: int) -> None:
        self.running_max = running
        self.waiting_max = waiting
        self._limiter = trio.CapacityLimiter(running)
        self._admitted = 0

    @property
    def running(self) -> int:
        return int(self._limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        return self._admitted - self.running

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._admitted >= self.running_max + self.waiting_max:
            raise LocalProtocolError(
                BUSY,
                f"execution queue full ({self.running} running, {self.waiting} waiting); "
                "try again shortly",
            )
        self._admitted += 1
        try:
            async with self._limiter:
                yield
        finally:
            self._admitted -= 1


class ExecSession:
    """One connection of the exec service."""

    def __init__(
        self, ctx: ServiceContext, sandbox: Sandbox, queue: RunQueue, conn: LineConnection
    ) -> None:
        self.ctx = ctx
        self.config: ExecConfig = ctx.config.exec
        self.sandbox = sandbox
        self.queue = queue
        self.conn = conn
        self.member: Member | None = None
        self._presence = AsyncExitStack()

    async def run(self) -> None:
        async with self._presence:
            await line_loop(self.conn, self.ctx.config.tcp, self.handle_line, logger)

    async def handle_line(self, line: str) -> bool:
        command = proto.parse_exec_command(
            line,
            max_code_bytes=self.config.max_code_bytes,
            max_stdin_bytes=self.config.max_stdin_bytes,
            history_page_max=self.config.history_page_max,
        )
        match command:
            case proto.RunHeader():
                await self._run(command)
            case proto.History(limit):
                await self.conn.send_lines(await self._history(limit))
            case proto.Show(run_id):
                await self._show(run_id)
            case _:
                await self.conn.send_line(await self._simple(command))
        return not isinstance(command, proto.Bye)

    async def _simple(self, command: proto.ExecCommand) -> str:
        peer = self.conn.peer_host
        match command:
            case proto.Hello(user, room, token):
                return await self._enter(await self.ctx.rooms.admit(room, user, peer, token))
            case proto.Auth(token):
                return await self._enter(await self.ctx.rooms.admit_token(token, peer))
            case proto.Langs():
                return proto.format_langs()
            case proto.Ping():
                return "PONG"
            case _:
                return "OK BYE"

    def _admitted(self) -> Member:
        if self.member is None:
            raise LocalProtocolError(NOT_MEMBER, "say HELLO <user> <room> [<token>] first")
        return self.member

    async def _enter(self, member: Member) -> str:
        if self.member is not None and self.member.code != member.code:
            raise LocalProtocolError(NOT_MEMBER, "this connection already belongs to a room")
        if self.member is None:
            await self._presence.enter_async_context(self.ctx.rooms.presence(member))
            self.sandbox.warm_up()
        self.member = member
        return proto.format_hello(member.code, member.user)

    # ------------------------------------------------------------------ RUN

    async def _run(self, header: proto.RunHeader) -> None:
        if self.member is None:
            # Refused from its line alone: the bodies are read and dropped, never held
            # (an unadmitted peer could otherwise park ~1 MiB per connection).
            await self._bodies(header, keep=False)
            self._admitted()
        code, stdin = await self._bodies(header)
        request = proto.complete_run(header, code, stdin)
        member = self._admitted()
        submitted_s, queued_at = time.time(), trio.current_time()
        async with self.queue.slot():
            queue_ms = round((trio.current_time() - queued_at) * 1000)
            result = await self.sandbox.run(Job(request.language, request.code, request.stdin))
        run_id = await self._record(member, submitted_s, result, request)
        log_event(
            logger,
            "run",
            peer=self.conn.peer,
            room=member.code,
            user=member.user,
            language=request.language.value,
            verdict=result.verdict.value,
            compile_ms=result.compile_ms,
            run_ms=result.run_ms,
            queue_ms=queue_ms,
            id=run_id,
        )
        head = encode_line(proto.format_result(run_id, result))
        await self.conn.send(head + result.diag + result.stdout + result.stderr)

    async def _bodies(self, header: proto.RunHeader, *, keep: bool = True) -> tuple[bytes, bytes]:
        """Both bodies, in full, within the idle timeout (a stalled sender is cut off);
        with ``keep=False`` read and dropped as they come."""
        with trio.move_on_after(self.ctx.config.tcp.idle_timeout_s):
            if not keep:
                await self.conn.skip_body(header.code_bytes + header.stdin_bytes)
                return b"", b""
            code = await self.conn.receive_body(header.code_bytes)
            stdin = await self.conn.receive_body(header.stdin_bytes)
            return code, stdin
        raise RemoteProtocolError(TIMEOUT, "the announced bodies did not arrive", fatal=True)

    async def _record(
        self, member: Member, submitted_s: float, result: ExecResult, request: proto.Run
    ) -> int | None:
        """Store the run in the room's history; ``None`` if it is not an execution at all."""
        if result.verdict is Verdict.SANDBOX_UNAVAILABLE:
            return None
        # The stdin is kept like an output stream: its first bytes, marked when cut.
        stdin = request.stdin[: self.config.history_stdin_bytes]
        truncated = result.truncated + ((proto.STDIN,) if len(stdin) < len(request.stdin) else ())
        record = NewExecution(
            member.code, member.user, request.language.value, submitted_s, result.verdict.value,
            result.exit_code, result.compile_ms, result.run_ms, truncated, request.code, stdin,
            len(request.stdin), result.diag, result.stdout, result.stderr,
        )  # fmt: skip
        run_id: int | None = None
        try:
            with trio.CancelScope(shield=True):  # a finished run is worth keeping
                run_id = await self.ctx.store.executions.record(
                    record, self.config.history_per_room
                )
        except StoreError as exc:
            log_event(logger, "history.failed", logging.ERROR, reason=str(exc))
        return run_id

    # ------------------------------------------------------------------ history

    async def _history(self, limit: int) -> list[str]:
        member = self._admitted()
        runs = await self.ctx.store.executions.recent(member.code, limit)
        return [f"HISTORY {len(runs)}", *(proto.format_entry(_entry(run)) for run in runs)]

    async def _show(self, run_id: int) -> None:
        member = self._admitted()
        found = await self.ctx.store.executions.get(member.code, run_id)
        if found is None:
            raise LocalProtocolError(NOT_FOUND, f"no run {run_id} in room {member.code}")
        head = encode_line(proto.format_entry(_entry(found.summary)))
        bodies = found.code + found.diag + found.stdout + found.stderr + found.stdin
        await self.conn.send(head + bodies)


def _entry(run: ExecutionSummary) -> proto.Entry:
    return proto.Entry(
        run.run_id, round(run.created_at * 1000), run.user, Language(run.language),
        Verdict(run.verdict), run.exit_code, run.compile_ms, run.run_ms, run.truncated,
        run.code_bytes, run.diag_bytes, run.stdout_bytes, run.stderr_bytes, run.stdin_bytes,
    )  # fmt: skip
