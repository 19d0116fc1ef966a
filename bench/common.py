"""What every benchmark shares: the ``--quick`` flag, percentiles and the RESULT line.

Every script in ``bench/`` measures its subject *and* a baseline in the same run on the same
machine, reports ratios, and ends with exactly one line::

    RESULT <bench> key=value key=value ...

where ratios and targets are plain numbers and verdicts are ``true``/``false`` (for
example ``target_met=true``), so anyone can read the outcome without parsing prose.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    return parser


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sample."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace(" ", "_")


def result_line(bench: str, **values: object) -> str:
    fields = " ".join(f"{key}={format_value(value)}" for key, value in values.items())
    return f"RESULT {bench} {fields}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_services(data_dir: str, service: str) -> None:
    """A benchmark's server process: the room manager and ``service`` (``chat``, ``collab``)
    on free ports with the default config; prints its ports as JSON on one line."""
    # Imported here: client processes of a benchmark import this module but never Trio.
    import trio  # noqa: PLC0415

    from syncrox.config import Config, Ports  # noqa: PLC0415
    from syncrox.services import chat, collab, rooms  # noqa: PLC0415
    from syncrox.services.context import ServiceContext  # noqa: PLC0415
    from syncrox.services.registry import RoomRegistry  # noqa: PLC0415
    from syncrox.store import Store  # noqa: PLC0415

    serve = {"chat": chat.serve, "collab": collab.serve}[service]
    ports = Ports(**{"rooms": 0, service: 0})
    config = Config(data_dir=Path(data_dir), ports=ports, log_level="WARNING")

    async def main() -> None:
        with Store.open(config.data_dir) as store:
            ctx = ServiceContext(config, store, RoomRegistry(store.rooms, config.rooms))
            async with trio.open_nursery() as nursery:
                bound = {**await nursery.start(rooms.serve, ctx)}
                bound.update(await nursery.start(serve, ctx))
                print(json.dumps(bound), flush=True)

    trio.run(main)


def bench_main(main: Callable[[], int], service: str) -> None:
    """A benchmark's entry point: ``--serve DIR`` runs its server process (see
    ``start_server``), anything else runs the benchmark itself."""
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve_services(sys.argv[2], service)
    else:
        sys.exit(main())


def start_server(module: str, *serve_args: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """Start ``python -m <module> --serve <serve_args...>`` (for a benchmark module, its data
    directory: ``bench_main`` then calls ``serve_services``); return the process and the
    ports it printed as JSON on its first line."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--serve", *serve_args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    ports: dict[str, int] = json.loads(process.stdout.readline())
    return process, ports


def stop_server(process: subprocess.Popen[str]) -> None:
    """Stop a process from ``start_server`` and close its pipe."""
    process.terminate()
    process.wait(timeout=30)
    if process.stdout is not None:
        process.stdout.close()
