"""``syncrox-trio rooms create|join|exists|whoami|leave``: talk to the room manager."""

from __future__ import annotations

import argparse

import trio

from syncrox.cli.common import (
    CONNECT_TIMEOUT_S,
    EXIT_FAILED,
    EXIT_OK,
    add_client_options,
    endpoints_from_args,
    run_command,
)
from syncrox.client.rooms import RoomsClient
from syncrox.errors import SyncroxError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("rooms", help="create, join or leave rooms")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("create", "create a room (needs --user); prints the code and your token"),
        ("join", "join --room as --user; prints your membership token"),
        ("exists", "exit 0 if --room exists"),
        ("whoami", "show the room and user of --token"),
        ("leave", "give up the membership of --token"),
    ):
        sub = actions.add_parser(action, help=text)
        add_client_options(sub)
        sub.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    endpoints = endpoints_from_args(args)

    async def main() -> int:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            async with RoomsClient.connect(endpoints.host, endpoints.port("rooms")) as rooms:
                return await _act(rooms, args)

    return run_command(main)


async def _act(rooms: RoomsClient, args: argparse.Namespace) -> int:
    match args.action:
        case "create":
            code, token = await rooms.create(_need(args.user, "--user"))
            print(f"room {code}\ntoken {token}")
        case "join":
            token = await rooms.join(
                _need(args.room, "--room"), _need(args.user, "--user"), args.token
            )
            print(f"token {token}")
        case "exists":
            found = await rooms.exists(_need(args.room, "--room"))
            print("exists" if found else "not found")
            return EXIT_OK if found else EXIT_FAILED
        case "whoami":
            code, user = await rooms.whoami(_need(args.token, "--token"))
            print(f"room {code}\nuser {user}")
        case _:
            code = await rooms.leave(_need(args.token, "--token"))
            print(f"left room {code}")
    return EXIT_OK


def _need(value: str | None, flag: str) -> str:
    if not value:
        raise SyncroxError(f"this action needs {flag}")
    return value
