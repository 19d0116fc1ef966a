"""``syncrox-trio exec FILE --lang L --room R --user U [--stdin PATH]``: run a program.

Prints the program's stdout on stdout and its stderr on stderr, then (on stderr) the
compiler's diagnostics and the sandbox's notes, and a summary line with the verdict and the
duration of each phase. The exit status is 0 only for the verdict OK.

``--lang`` may be left out when the file's extension says it (.py, .c, .cpp/.cc/.cxx, .java).
``--stdin -`` reads the program's stdin from our own stdin.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from syncrox.cli.common import (
    CONNECT_TIMEOUT_S,
    EXIT_FAILED,
    EXIT_OK,
    add_client_options,
    endpoints_from_args,
    run_command,
)
from syncrox.client.exec import ExecClient, RunReply
from syncrox.client.lines import DEFAULT_MAX_LINE_BYTES
from syncrox.errors import SyncroxError
from syncrox.net.lines import LineConnection
from syncrox.sandbox.model import Language

# The server answers within its queue wait plus both phases' limits; this only stops a
# client from hanging on a server that never answers.
REPLY_TIMEOUT_S = 600.0
MAX_FILE_BYTES = 16 * 1024 * 1024
EXTENSIONS = {
    ".py": Language.PYTHON,
    ".c": Language.C,
    ".cpp": Language.CPP,
    ".cc": Language.CPP,
    ".cxx": Language.CPP,
    ".java": Language.JAVA,
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("exec", help="run a program in the room's sandbox")
    parser.add_argument("file", type=Path, help="the source file")
    parser.add_argument("--lang", choices=Language.names(), help="default: from the extension")
    parser.add_argument("--stdin", help="file to feed the program's stdin ('-' for ours)")
    add_client_options(parser)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if not args.room or not args.user:
        raise SyncroxError("exec needs --room CODE and --user NAME")
    language = _language(args)
    code = _read(args.file)
    stdin = _read_stdin(args.stdin)
    endpoints = endpoints_from_args(args)

    async def main() -> int:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            stream = await trio.open_tcp_stream(endpoints.host, endpoints.port("exec"))
        async with stream:
            client = ExecClient(LineConnection(stream, max_line_bytes=DEFAULT_MAX_LINE_BYTES))
            with trio.fail_after(CONNECT_TIMEOUT_S):
                await client.hello(args.user, args.room, args.token)
            with trio.fail_after(REPLY_TIMEOUT_S):
                reply = await client.run(language, code, stdin)
        return _report(reply)

    return run_command(main)


def _language(args: argparse.Namespace) -> Language:
    if args.lang:
        return Language(args.lang)
    found = EXTENSIONS.get(args.file.suffix.lower())
    if found is None:
        raise SyncroxError(f"cannot tell the language of {args.file.name}; pass --lang")
    return found


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SyncroxError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SyncroxError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return data


def _read_stdin(source: str | None) -> bytes:
    if source is None:
        return b""
    if source == "-":
        return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    return _read(Path(source))


def _report(reply: RunReply) -> int:
    header = reply.header
    sys.stdout.buffer.write(reply.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(reply.stderr)
    if reply.diag:
        sys.stderr.buffer.write(reply.diag if reply.diag.endswith(b"\n") else reply.diag + b"\n")
    summary = [f"verdict {header.verdict.value}"]
    summary.append(f"exit {'-' if header.exit_code is None else header.exit_code}")
    summary.append(f"compile {_ms(header.compile_ms)}")
    summary.append(f"run {_ms(header.run_ms)}")
    if header.truncated:
        summary.append(f"truncated {','.join(header.truncated)}")
    if header.run_id is not None:
        summary.append(f"id {header.run_id}")
    sys.stderr.write(f"[exec] {' | '.join(summary)}\n")
    sys.stderr.flush()
    return EXIT_OK if reply.ok else EXIT_FAILED


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value} ms"
