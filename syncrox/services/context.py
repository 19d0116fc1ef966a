"""What every service is given: the config, the store and the room registry.

Each service module exposes ``async def serve(ctx, *, task_status)``; ``task_status``
reports ``{port name: bound port}`` (the keys of ``ports.json``) once it is listening.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

import trio

from syncrox.config import Config
from syncrox.services.registry import RoomRegistry
from syncrox.store import Store

BoundPorts = dict[str, int]


@dataclass(frozen=True)
class ServiceContext:
    config: Config
    store: Store
    rooms: RoomRegistry


class ServeFunction(Protocol):
    def __call__(
        self, ctx: ServiceContext, *, task_status: trio.TaskStatus[BoundPorts] = ...
    ) -> Awaitable[None]: ...
