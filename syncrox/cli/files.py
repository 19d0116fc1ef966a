"""``syncrox-trio send | get | files | netem``: file transfer over reliable UDP.

``send FILE`` and ``get NAME --output PATH`` print a progress bar and a summary (goodput,
retransmissions, final cwnd, SRTT) and exit 0 only when the file arrived whole and
verified. Emulation flags (``--loss``, ``--delay`` ...) impair this client's own datagrams
in-process, both ways. ``netem`` runs the same emulation as a UDP proxy between real peers.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from syncrox.cli.common import (
    CONNECT_TIMEOUT_S,
    EXIT_FAILED,
    EXIT_OK,
    add_client_options,
    endpoints_from_args,
    run_command,
)
from syncrox.client.endpoints import Endpoints
from syncrox.client.files import (
    FilesClient,
    TransferOptions,
    TransferResult,
    download,
    upload,
)
from syncrox.client.lines import DEFAULT_MAX_LINE_BYTES
from syncrox.errors import ConfigError, SyncroxError
from syncrox.net.lines import LineConnection
from syncrox.netem import NetemConfig, run_proxy
from syncrox.protocol.rudp.congestion import ALGORITHMS, DEFAULT_ALGORITHM
from syncrox.protocol.rudp.packets import DEFAULT_MSS_BYTES, Codec
from syncrox.services.files_export import event_row, to_csv
from syncrox.store.files import EventRow, TransferRecord


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser("send", help="upload a file to a room over reliable UDP")
    send.add_argument("file", type=Path)
    send.add_argument("--name", help="store it under this name (default: the file's name)")
    get = commands.add_parser("get", help="download a room's file over reliable UDP")
    get.add_argument("name")
    get.add_argument("--output", "-o", type=Path, required=True, help="where to write it")
    for parser, func in ((send, _send), (get, _get)):
        add_client_options(parser)
        _add_transfer_options(parser)
        add_netem_options(parser)
        parser.set_defaults(func=func)
    files = commands.add_parser("files", help="list, delete or export metrics of files")
    actions = files.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("list", "the room's files"),
        ("delete", "delete NAME from the room"),
        ("transfers", "recent transfers of the room"),
        ("metrics", "a transfer's congestion events (CSV or qlog JSON)"),
    ):
        sub = actions.add_parser(action, help=text)
        add_client_options(sub)
        if action in ("delete", "metrics"):
            sub.add_argument("target", help="file name" if action == "delete" else "transfer id")
        if action == "metrics":
            sub.add_argument("--format", choices=("csv", "qlog"), default="csv")
            sub.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
        sub.set_defaults(func=_files)
    netem = commands.add_parser("netem", help="a UDP proxy that emulates a bad network")
    netem.add_argument("--listen", required=True, help="[HOST:]PORT to listen on")
    netem.add_argument("--forward", required=True, help="HOST:PORT to forward to")
    add_netem_options(netem)
    netem.set_defaults(func=_netem)


def _add_transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", choices=sorted(ALGORITHMS), default=DEFAULT_ALGORITHM)
    parser.add_argument("--codec", choices=[c.value for c in Codec], default=Codec.JSON.value)
    parser.add_argument("--mss", type=int, default=DEFAULT_MSS_BYTES, help="chunk bytes")
    parser.add_argument("--metrics-out", type=Path, help="write this side's events as CSV")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_netem_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("network emulation (in-process, both directions)")
    for flag, text in (
        ("--loss", "loss probability 0..1"),
        ("--duplicate", "duplication probability 0..1"),
        ("--reorder", "probability a datagram is held back --reorder-ms"),
        ("--burst-enter", "Gilbert-Elliott: probability of entering a loss burst"),
        ("--burst-exit", "Gilbert-Elliott: probability of leaving a loss burst"),
        ("--burst-loss", "loss probability inside a burst"),
    ):
        group.add_argument(flag, type=float, help=text)
    for flag, text in (
        ("--delay", "one-way delay, ms"),
        ("--jitter", "extra random delay 0..JITTER, ms"),
        ("--reorder-ms", "hold-back of a reordered datagram, ms"),
        ("--rate", "bandwidth cap, bytes per second"),
    ):
        group.add_argument(flag, type=float, help=text)
    group.add_argument("--seed", type=int, default=0, help="random seed (reproducible runs)")


def netem_from_args(args: argparse.Namespace) -> NetemConfig:
    names = {
        "loss": "loss", "duplicate": "duplicate", "reorder": "reorder",
        "burst_enter": "burst_enter", "burst_exit": "burst_exit", "burst_loss": "burst_loss",
        "delay": "delay_ms", "jitter": "jitter_ms", "reorder_ms": "reorder_ms",
        "rate": "rate_bytes_per_s",
    }  # fmt: skip
    values = {field: getattr(args, arg) for arg, field in names.items()}
    return NetemConfig(seed=args.seed, **{k: v for k, v in values.items() if v is not None})


def _options(args: argparse.Namespace) -> TransferOptions:
    return TransferOptions(
        algo=args.algo, codec=Codec(args.codec), mss=args.mss, netem=netem_from_args(args),
        udp_port=args.port_files_udp,  # explicit: e.g. a netem proxy in front of the server
    )  # fmt: skip


def _send(args: argparse.Namespace) -> int:
    endpoints, options = endpoints_from_args(args), _options(args)
    if not args.file.is_file():
        raise SyncroxError(f"{args.file} is not a file")

    async def act(files: FilesClient, progress: _Bar) -> TransferResult:
        return await upload(
            files, endpoints.host, args.file, options, name=args.name, progress=progress.update
        )

    return run_command(functools.partial(_transfer, endpoints, args, act))


def _get(args: argparse.Namespace) -> int:
    endpoints, options = endpoints_from_args(args), _options(args)

    async def act(files: FilesClient, progress: _Bar) -> TransferResult:
        return await download(
            files, endpoints.host, args.name, args.output, options, progress=progress.update
        )

    return run_command(functools.partial(_transfer, endpoints, args, act))


class _Bar:
    def __init__(self, enabled: bool) -> None:
        console = Console(stderr=True)
        self.progress = Progress(
            BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console,
            transient=True, disable=not enabled or not console.is_terminal,
        )  # fmt: skip
        self.task = self.progress.add_task("transfer", total=None)

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total or None)


Action = Callable[[FilesClient, "_Bar"], Awaitable[TransferResult]]


async def _transfer(endpoints: Endpoints, args: argparse.Namespace, act: Action) -> int:
    async with _connected(endpoints, args) as files:
        bar = _Bar(not args.no_progress)
        with bar.progress:
            result = await act(files, bar)
    _print_summary(result)
    if args.metrics_out is not None:
        _write_metrics(args.metrics_out, result, files.room)
    return EXIT_OK if result.ok else EXIT_FAILED


@asynccontextmanager
async def _connected(endpoints: Endpoints, args: argparse.Namespace) -> AsyncIterator[FilesClient]:
    """A File Control connection admitted to ``--room`` as ``--user`` (or by ``--token``)."""
    if not args.token and not (args.room and args.user):
        raise SyncroxError("this command needs --room CODE and --user NAME (or --token)")
    with trio.fail_after(CONNECT_TIMEOUT_S):
        stream = await trio.open_tcp_stream(endpoints.host, endpoints.port("files_tcp"))
    async with stream:
        files = FilesClient(
            LineConnection(stream, max_line_bytes=DEFAULT_MAX_LINE_BYTES, peer=endpoints.host)
        )
        with trio.fail_after(CONNECT_TIMEOUT_S):
            if args.room and args.user:
                await files.hello(args.room, args.user, args.token)
            else:
                await files.auth(args.token)
        yield files


def _print_summary(result: TransferResult) -> None:
    verb = "uploaded" if result.direction == "upload" else "downloaded"
    if result.ok:
        print(f"{verb} {result.name}: {result.size} bytes, verified (SHA-256)")
    else:
        code, text = result.failure or ("FAILED", "transfer did not complete")
        print(f"FAILED {result.name}: {code} {text}", file=sys.stderr)
    cwnd = "-" if result.final_cwnd is None else f"{result.final_cwnd:.1f}"
    srtt = "-" if result.srtt_ms is None else f"{result.srtt_ms:.1f} ms"
    print(
        f"  goodput {result.goodput_bytes_per_s / 1e6:.2f} MB/s in {result.seconds:.2f} s"
        f"  retransmissions {result.retransmissions}  timeouts {result.timeouts}"
        f"  final cwnd {cwnd}  SRTT {srtt}  algo {result.algo}  codec {result.codec}"
        + (f"  resumed from {result.resumed_bytes} bytes" if result.resumed_bytes else "")
    )
    print(f"  transfer id {result.transfer_id}")
    if result.report_failure is not None:
        code, text = result.report_failure
        print(f"  congestion events not stored on the server: {code} {text}", file=sys.stderr)
    elif result.events_reported:
        print(f"  {result.events_reported} congestion events stored on the server (METRICS)")


def _write_metrics(path: Path, result: TransferResult, room: str) -> None:
    # The events carry Trio's clock (not time.monotonic()); the result says how to make
    # Unix epoch seconds of it, as the server does for METRICS.
    rows: list[EventRow] = [event_row(e, result.clock_offset_s) for e in result.events]
    record = TransferRecord(
        result.transfer_id, room, result.name, result.direction, "", result.algo, result.codec,
        result.size, "", rows[0].ts if rows else 0.0, None, "ok" if result.ok else "failed",
    )  # fmt: skip
    path.write_bytes(to_csv(record, rows))


def _files(args: argparse.Namespace) -> int:
    endpoints = endpoints_from_args(args)

    async def main() -> int:
        async with _connected(endpoints, args) as files:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                return await _file_action(files, args)

    return run_command(main)


async def _file_action(files: FilesClient, args: argparse.Namespace) -> int:
    match args.action:
        case "list":
            for entry in await files.list_files():
                print(f"{entry.size:>12} {entry.sha256[:16]} {entry.uploaded_by:<12} {entry.name}")
        case "delete":
            await files.delete(args.target)
            print(f"deleted {args.target}")
        case "transfers":
            for t in await files.transfers():
                print(f"{t.transfer_id} {t.direction:<8} {t.status:<16} {t.algo:<7} "
                      f"{t.codec:<6} {t.size:>12} {t.name}")  # fmt: skip
        case _:
            body = await files.metrics(args.target, args.format)
            if args.output is not None:
                args.output.write_bytes(body)
            else:
                sys.stdout.write(body.decode("utf-8"))
    return EXIT_OK


def _netem(args: argparse.Namespace) -> int:
    listen, forward = _address(args.listen, "127.0.0.1"), _address(args.forward, None)
    config = netem_from_args(args)

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(functools.partial(run_proxy, listen, forward, config))
            print(f"netem proxy on {bound[0]}:{bound[1]} -> {forward[0]}:{forward[1]}", flush=True)
        return EXIT_OK

    return run_command(main)


def _address(text: str, default_host: str | None) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or (default_host or "")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)
