"""A room manager and a chat service in the test's own nursery, and helpers around them.

Only the two services the chat needs are started (not ``run_services``), so these tests
neither wait for nor depend on the other services.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from syncrox.client.chat import ChatClient, ClientEvent
from syncrox.client.rooms import RoomsClient
from syncrox.config import ChatConfig, Config, TcpLimits
from syncrox.services import chat
from syncrox.services.context import BoundPorts, ServiceContext
from tests.services.helpers import running_service

PNG_HEAD = b"\x89PNG\r\n\x1a\n"


@dataclass
class ChatServer:
    ports: BoundPorts
    ctx: ServiceContext

    @property
    def chat_port(self) -> int:
        return self.ports["chat"]

    async def create_room(self, creator: str = "zed") -> tuple[str, str]:
        async with RoomsClient.connect("127.0.0.1", self.ports["rooms"]) as client:
            return await client.create(creator)

    async def join_room(self, code: str, user: str) -> str:
        async with RoomsClient.connect("127.0.0.1", self.ports["rooms"]) as client:
            return await client.join(code, user)

    @asynccontextmanager
    async def client(
        self, user: str | None = None, room: str | None = None, token: str | None = None
    ) -> AsyncIterator[ChatClient]:
        """A chat client, said ``HELLO`` already when ``user`` and ``room`` are given."""
        async with ChatClient.connect("127.0.0.1", self.chat_port, keepalive_s=None) as client:
            if user is not None and room is not None:
                await client.hello(user, room, token)
            yield client


def with_chat(config: Config, **chat_overrides: object) -> Config:
    return dataclasses.replace(
        config,
        chat=dataclasses.replace(ChatConfig(), **chat_overrides),  # type: ignore[arg-type]
    )


def with_tcp(config: Config, **tcp_overrides: object) -> Config:
    return dataclasses.replace(
        config,
        tcp=dataclasses.replace(TcpLimits(), **tcp_overrides),  # type: ignore[arg-type]
    )


@asynccontextmanager
async def chat_server(config: Config) -> AsyncIterator[ChatServer]:
    async with running_service(config, chat.serve) as (ports, ctx):
        yield ChatServer(ports, ctx)


def record_chat_services(monkeypatch: pytest.MonkeyPatch) -> list[chat.ChatService]:
    """The ``ChatService`` of every chat server started from now on (e.g. so a test can take
    every image upload slot itself)."""
    services: list[chat.ChatService] = []

    class Recorded(chat.ChatService):
        def __init__(self, ctx: ServiceContext) -> None:
            super().__init__(ctx)
            services.append(self)

    monkeypatch.setattr(chat, "ChatService", Recorded)
    return services


async def next_event(client: ChatClient, kind: type[object] | None = None) -> ClientEvent:
    """The next event (of ``kind``, skipping others) from ``client``."""
    while True:
        event = await client.events.receive()
        if kind is None or isinstance(event, kind):
            return event
