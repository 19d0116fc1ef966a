"""Trio client of the code-execution service (TCP 9012).

``async with ExecClient.connect(host, port) as client:`` then ``await client.hello(user,
room)`` (or ``auth(token)``), ``await client.run("python", code, stdin)``. Replies are parsed
as untrusted input (bounded sizes, ``RemoteProtocolError``); an ``ERR`` reply raises
``RequestRefused`` with its code (``BUSY`` when the server's queue is full). A run can take as
long as the server's queue and time limits allow: wrap calls in your own ``trio.fail_after``.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncrox.client.lines import LineClient
from syncrox.client.rooms import checked
from syncrox.errors import BAD_ARGUMENT, BAD_COMMAND, LocalProtocolError, RemoteProtocolError
from syncrox.protocol import exec as proto
from syncrox.protocol.framing import encode_line
from syncrox.protocol.names import validate_room_code, validate_token, validate_user
from syncrox.sandbox.model import Language, Verdict


@dataclass(frozen=True)
class RunReply:
    header: proto.ResultHeader
    diag: bytes
    stdout: bytes
    stderr: bytes

    @property
    def verdict(self) -> Verdict:
        return self.header.verdict

    @property
    def ok(self) -> bool:
        return self.header.verdict is Verdict.OK


@dataclass(frozen=True)
class ShownRun:
    """One run of the room's history; ``stdin`` is what the history kept of it (``"stdin"``
    in ``entry.truncated``: only its first bytes)."""

    entry: proto.Entry
    code: bytes
    diag: bytes
    stdout: bytes
    stderr: bytes
    stdin: bytes


class ExecClient(LineClient):
    room = ""  # the room this connection was admitted to
    user = ""

    async def hello(self, user: str, room: str, token: str | None = None) -> None:
        line = f"HELLO {checked(validate_user, user)} {checked(validate_room_code, room)}"
        if token:
            line += f" {checked(validate_token, token)}"
        await self._expect_hello(line)

    async def auth(self, token: str) -> tuple[str, str]:
        await self._expect_hello(f"AUTH {checked(validate_token, token)}")
        return self.room, self.user

    async def _expect_hello(self, line: str) -> None:
        word, room, user = proto.expect_reply(await self.request(line), "OK", 3)
        if word != "HELLO":
            raise RemoteProtocolError(BAD_COMMAND, "expected OK HELLO <room> <user>")
        self.room, self.user = room, user

    async def languages(self) -> list[str]:
        return (await self.request("LANGS")).split(" ")[1:]

    async def run(self, language: Language | str, code: bytes, stdin: bytes = b"") -> RunReply:
        name = language.value if isinstance(language, Language) else language
        if not name.isascii() or not name.isalnum():
            raise LocalProtocolError(BAD_ARGUMENT, "a language is a word such as python")
        line = f"RUN {name} {len(code)} {len(stdin)}"
        await self.conn.send(encode_line(line) + code + stdin)
        header = proto.parse_result(await self.receive_reply())
        diag = await self.conn.receive_body(header.diag_bytes)
        stdout = await self.conn.receive_body(header.stdout_bytes)
        stderr = await self.conn.receive_body(header.stderr_bytes)
        return RunReply(header, diag, stdout, stderr)

    async def history(self, limit: int | None = None) -> list[proto.Entry]:
        count = proto.parse_count(
            await self.request("HISTORY" if limit is None else f"HISTORY {int(limit)}"), "HISTORY"
        )
        return [proto.parse_entry(await self.receive_reply()) for _ in range(count)]

    async def show(self, run_id: int) -> ShownRun:
        entry = proto.parse_entry(await self.request(f"SHOW {int(run_id)}"))
        sizes = (entry.code_bytes, entry.diag_bytes, entry.stdout_bytes, entry.stderr_bytes,
                 entry.stdin_bytes)  # fmt: skip
        code, diag, stdout, stderr, stdin = [await self.conn.receive_body(n) for n in sizes]
        return ShownRun(entry, code, diag, stdout, stderr, stdin)

    async def ping(self) -> None:
        proto.expect_reply(await self.request("PING"), "PONG", 0)

    async def bye(self) -> None:
        proto.expect_reply(await self.request("BYE"), "OK", 1)
