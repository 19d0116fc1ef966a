"""``syncrox-trio doc --room R --lang py [--user U] [--token T] [--watch]``: print a document.

Prints the room's document for that language on stdout, as the server has it. With
``--watch`` it stays connected and prints the whole text again after every change (at
most every ``--interval`` seconds), each time after a line on stderr naming who else has
the document open and who is typing. Admission is ``--room`` with ``--user`` (and the
user's ``--token`` if the name is reserved), or ``--token`` alone.
"""

from __future__ import annotations

import argparse
import sys
import time

import trio

from syncrox.cli.common import (
    CONNECT_TIMEOUT_S,
    EXIT_OK,
    add_client_options,
    endpoints_from_args,
    run_command,
)
from syncrox.client.collab import CollabClient, tcp_connector
from syncrox.errors import SyncroxError
from syncrox.protocol.collab import LANGUAGES, parse_language

LANGUAGE_CHOICES = (*LANGUAGES, "py", "c++")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("doc", help="print (or --watch) a room's collaborative document")
    parser.add_argument("--lang", required=True, type=str.lower, choices=LANGUAGE_CHOICES)
    parser.add_argument("--watch", action="store_true", help="print again after every change")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="--watch: at most one print per this many s"
    )
    add_client_options(parser)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if not args.token and not (args.room and args.user):
        raise SyncroxError("doc needs --room and --user, or --token")
    endpoints = endpoints_from_args(args)
    language = parse_language(args.lang)

    async def main() -> int:
        client = CollabClient(  # inside the run: it reads Trio's clock as it is built
            tcp_connector(endpoints.host, endpoints.port("collab")),
            language=language,
            room=args.room if args.user else None,
            user=args.user,
            token=args.token,
        )
        async with trio.open_nursery() as nursery:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                await nursery.start(client.run)
            _print(client.view())
            if args.watch:
                await _watch(client, args.interval)
            nursery.cancel_scope.cancel()
        return EXIT_OK

    return run_command(main)


async def _watch(client: CollabClient, interval_s: float) -> None:
    shown = client.text
    version = client.version
    while True:
        version = await client.wait_changed(version)
        await trio.sleep(interval_s)  # let a burst of keystrokes settle into one print
        text = client.view()
        typing = sorted(
            str(peer.get("member")) for peer in client.replica.peers.values() if peer.get("typing")
        )
        status = "connected" if client.connected else "reconnecting"
        print(
            f"--- {time.strftime('%H:%M:%S')} {status}; here: {', '.join(client.members()) or '-'}"
            f"; typing: {', '.join(typing) or '-'}",
            file=sys.stderr,
            flush=True,
        )
        if text != shown:
            _print(text)
            shown = text


def _print(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    sys.stdout.flush()
