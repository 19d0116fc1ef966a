"""Options and plumbing shared by the CLI commands."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from syncrox.client.endpoints import Endpoints
from syncrox.client.rooms import RoomsClient
from syncrox.config import Config, Ports, load_config, parse_assignment
from syncrox.errors import RequestRefused, SyncroxError, leaf_exceptions
from syncrox.logs import configure_logging

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
CONNECT_TIMEOUT_S = 10.0
PORT_NAMES = tuple(field.name for field in dataclasses.fields(Ports))


def port_flag(name: str) -> str:
    return f"--{name.replace('_', '-')}-port"


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config, --host, --log-level, a flag per port, and --set KEY=VALUE."""
    parser.add_argument("--config", type=Path, help="TOML config file (else $SYNCROX_CONFIG)")
    parser.add_argument("--host", help="host to bind (servers) or reach (clients)")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments",
        help="override any config key, e.g. --set rooms.room_idle_expiry_s=600",
    )  # fmt: skip
    for name in PORT_NAMES:
        parser.add_argument(port_flag(name), type=int, dest=f"port_{name}", metavar="PORT")


def add_client_options(parser: argparse.ArgumentParser, *, room: bool = True) -> None:
    add_config_options(parser)
    parser.add_argument("--ports-file", type=Path, help="ports.json written by `run`")
    if room:
        parser.add_argument("--room", help="4-digit room code")
        parser.add_argument("--user", help="your user name")
        parser.add_argument("--token", help="membership token from an earlier join")


def config_from_args(args: argparse.Namespace, extra: dict[str, object] | None = None) -> Config:
    overrides: dict[str, object] = dict(parse_assignment(item) for item in args.assignments)
    if args.host is not None:
        overrides["host"] = args.host
    if args.log_level is not None:
        overrides["log_level"] = args.log_level
    overrides.update(extra or {})
    for name in PORT_NAMES:
        value = getattr(args, f"port_{name}")
        if value is not None:
            overrides[f"ports.{name}"] = value
    config = load_config(config_file=args.config, cli_overrides=overrides)
    configure_logging(config.log_level)
    return config


def endpoints_from_args(args: argparse.Namespace) -> Endpoints:
    config = config_from_args(args)
    explicit = {
        name: getattr(args, f"port_{name}")
        for name in PORT_NAMES
        if getattr(args, f"port_{name}") is not None
    }
    return Endpoints.resolve(config, ports_file=args.ports_file, explicit_ports=explicit)


async def join_room(endpoints: Endpoints, args: argparse.Namespace) -> str:
    """Join ``--room`` as ``--user`` (re-using ``--token`` if given); return the token."""
    if not args.room or not args.user:
        raise SyncroxError("this command needs --room CODE and --user NAME")
    with trio.fail_after(CONNECT_TIMEOUT_S):
        async with RoomsClient.connect(endpoints.host, endpoints.port("rooms")) as rooms:
            token: str = await rooms.join(args.room, args.user, args.token)
            return token


def run_command(main: Callable[[], Awaitable[int]]) -> int:
    """Run an async command; turn our errors into a message and an exit status."""
    try:
        try:
            return trio.run(main)
        except BaseExceptionGroup as group:  # raised out of a nursery: report its cause
            raise first_cause(group) from group
    except RequestRefused as exc:
        print(f"refused: {exc.code} {exc.message}", file=sys.stderr)
    except (SyncroxError, OSError, trio.TooSlowError) as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        print("error: the server closed the connection", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return EXIT_FAILED


def first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception a user should hear about: Ctrl-C first, then the first leaf."""
    leaves = leaf_exceptions(group)
    interrupts = [exc for exc in leaves if isinstance(exc, KeyboardInterrupt)]
    return (interrupts or leaves)[0]


def describe(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
