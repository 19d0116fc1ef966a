"""``syncrox-trio run``: start every service and the web UI; stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
from pathlib import Path

import trio

from syncrox.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_config_options,
    config_from_args,
    describe,
    first_cause,
)
from syncrox.config import Config
from syncrox.errors import SyncroxError
from syncrox.logs import log_event
from syncrox.services.runner import run_services
from syncrox.services.ui import connect_host

logger = logging.getLogger("syncrox.run")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, ui in (("run", True), ("serve", False)):
        parser = commands.add_parser(
            name,
            help="start every service and the web UI" if ui else "start every service, no UI",
        )
        add_config_options(parser)
        parser.add_argument("--data-dir", type=Path, help="where rooms, files and logs live")
        if ui:
            parser.add_argument("--no-ui", action="store_true", help="do not start the web UI")
        parser.set_defaults(func=functools.partial(_run, ui=ui))


def _run(args: argparse.Namespace, *, ui: bool) -> int:
    extra: dict[str, object] = {}
    if args.data_dir is not None:
        extra["data_dir"] = args.data_dir
    config = config_from_args(args, extra)
    want_ui = ui and not args.no_ui
    try:
        try:
            trio.run(functools.partial(serve_until_signalled, config, ui=want_ui))
        except BaseExceptionGroup as group:  # raised out of a nursery: report its cause
            raise first_cause(group) from group
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130
    except (SyncroxError, OSError) as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


async def serve_until_signalled(config: Config, *, ui: bool) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(_cancel_on_signal, nursery.cancel_scope)
        ports = await nursery.start(functools.partial(run_services, config, ui=ui))
        host = connect_host(config.host)
        summary = " ".join(f"{name}={port}" for name, port in sorted(ports.items()))
        print(f"syncrox-trio ready on {config.host}: {summary}", flush=True)
        print(f"ports written to {config.data_dir / 'ports.json'}", flush=True)
        if "ui" in ports:
            print(f"web UI: http://{host}:{ports['ui']}/", flush=True)


async def _cancel_on_signal(
    scope: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log_event(logger, "shutdown", signal=signal.Signals(signum).name)
            scope.cancel()
            return
