"""``syncrox-trio run``: every service in one ``trio.run``, one nursery, one store.

Start-up: drop a stale ``ports.json``, open the store (which locks the data directory),
start each service with ``nursery.start`` (so it is listening before the next starts),
write ``ports.json``, then start the web UI, which reads it. Shutdown is cancellation: each
service stops accepting, its connections are cancelled, SQLite writes in flight complete
(they are never abandoned half-way) and the store is closed last.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import trio

from syncrox.config import Config
from syncrox.errors import StoreError, SyncroxError, leaf_exceptions
from syncrox.logs import log_event
from syncrox.services import chat, collab, files, rooms
from syncrox.services import exec as exec_service
from syncrox.services.context import BoundPorts, ServeFunction, ServiceContext
from syncrox.services.registry import RoomRegistry
from syncrox.services.ui import run_ui
from syncrox.store import Store
from syncrox.store.blobs import write_file_atomically

logger = logging.getLogger("syncrox.run")

PORTS_FILE = "ports.json"

# (name, serve) of every service, in start order. Each later service adds itself here.
SERVICES: Sequence[tuple[str, ServeFunction]] = (
    ("rooms", rooms.serve),
    ("chat", chat.serve),
    ("files", files.serve),
    ("exec", exec_service.serve),
    ("collab", collab.serve),
)


async def run_services(
    config: Config,
    *,
    ui: bool = True,
    task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED,
) -> None:
    ports_file = config.data_dir / PORTS_FILE
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(config.data_dir, sqlite_worker_thread=config.store.sqlite_worker_thread)
    ports_file.unlink(missing_ok=True)
    try:
        ctx = ServiceContext(config, store, RoomRegistry(store.rooms, config.rooms))
        async with trio.open_nursery() as nursery:
            ports: BoundPorts = {}
            for name, serve in SERVICES:
                try:
                    ports.update(await nursery.start(serve, ctx))
                except (OSError, BaseExceptionGroup) as exc:  # a port taken: say which
                    causes = [e for e in leaf_exceptions(exc) if isinstance(e, OSError)]
                    if not causes:
                        raise
                    cause = causes[0]
                    raise SyncroxError(
                        f"cannot start the {name} service on {config.host}: "
                        f"{cause.strerror or cause}"
                    ) from exc
                log_event(logger, "service.ready", service=name)
            _write_ports(ports_file, ports)

            def forget_ui() -> None:  # "a service that is not running has no key"
                ports.pop("ui", None)
                try:
                    _write_ports(ports_file, ports)
                except StoreError as exc:  # a full disk must not stop the services too
                    log_event(logger, "ports.write_failed", logging.ERROR, reason=exc)

            if ui and (
                ui_port := await nursery.start(
                    functools.partial(run_ui, config, ports_file, on_exit=forget_ui)
                )
            ):
                ports["ui"] = ui_port
                _write_ports(ports_file, ports)
            log_event(logger, "ready", data_dir=config.data_dir, **ports)
            task_status.started(dict(ports))
    finally:
        ports_file.unlink(missing_ok=True)
        store.close()
        log_event(logger, "stopped")


def _write_ports(path: Path, ports: BoundPorts) -> None:
    write_file_atomically(path, (json.dumps(ports, indent=2, sort_keys=True) + "\n").encode())
