"""``syncrox-trio``: one command line for the servers and every client."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from syncrox import __version__
from syncrox.cli import chat, collab, files, rooms, run, sandbox
from syncrox.cli import exec as exec_command
from syncrox.cli.common import EXIT_USAGE
from syncrox.errors import SyncroxError

# Each command module exposes register(subparsers); later commands add themselves here.
COMMAND_MODULES = (run, rooms, chat, files, exec_command, sandbox, collab)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncrox-trio",
        description="Real-time collaboration: rooms, chat, files over reliable UDP, a "
        "converging editor and sandboxed code execution.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except SyncroxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return status
