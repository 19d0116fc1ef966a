"""The room manager over real loopback sockets."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import trio

from syncrox.client.rooms import RoomsClient
from syncrox.config import Config, TcpLimits
from syncrox.errors import RequestRefused
from syncrox.services import rooms
from syncrox.services.context import BoundPorts
from syncrox.services.runner import run_services
from tests.services.helpers import raw_client, running_service


async def test_create_join_exists_list_whoami_leave_bye(services: BoundPorts) -> None:
    with trio.fail_after(10):
        async with raw_client(services["rooms"]) as client:
            word, code, token = (await client.ask("CREATE alice")).split(" ")
            assert word == "ROOM" and len(code) == 4 and code.isdigit() and len(token) >= 16
            joined = (await client.ask(f"JOIN {code} bob")).split(" ")
            assert joined[:3] == ["JOINED", code, "bob"]
            assert await client.ask(f"EXISTS {code}") == "OK"
            assert await client.ask("LIST") == f"ROOMS {code}"
            assert await client.ask(f"WHOAMI {token}") == f"MEMBER {code} alice"
            assert await client.ask(f"LEAVE {joined[3]}") == f"OK LEFT {code}"
            assert await client.ask("PING") == "PONG"
            assert await client.ask("BYE") == "OK BYE"
            assert await client.closed()


async def test_list_shows_only_rooms_this_connection_entered(services: BoundPorts) -> None:
    with trio.fail_after(10):
        async with raw_client(services["rooms"]) as alice, raw_client(services["rooms"]) as eve:
            code = (await alice.ask("CREATE alice")).split(" ")[1]
            assert await eve.ask("LIST") == "ROOMS"
            await eve.ask(f"JOIN {code} eve")
            assert await eve.ask("LIST") == f"ROOMS {code}"


@pytest.mark.parametrize(
    ("request_line", "code"),
    [
        (b"\x00\x01garbage!!\n", "BAD_COMMAND"),
        (b"FROB 1234\n", "BAD_COMMAND"),
        (b"EXISTS 12\n", "BAD_ROOM"),
        (b"JOIN abcd bob\n", "BAD_ROOM"),
        (b"CREATE <script>alert(1)</script>\n", "BAD_USER"),
        (b"CREATE " + b"a" * 40 + b"\n", "BAD_USER"),
        (b"JOIN 1234\n", "BAD_ARGUMENT"),
        (b"\xff\xfe\xfd\n", "BAD_UTF8"),
        (b"CREATE " + b"x" * 10_000 + b"\n", "LINE_TOO_LONG"),
        (b"\n", "BAD_COMMAND"),
    ],
)
async def test_bad_input_gets_an_error_and_the_connection_keeps_working(
    services: BoundPorts, request_line: bytes, code: str
) -> None:
    with trio.fail_after(10):
        async with raw_client(services["rooms"]) as client:
            await client.send(request_line)
            reply = await client.line()
            assert reply is not None and reply.startswith(f"ERR {code} ")
            assert await client.ask("PING") == "PONG"


async def test_unknown_room_is_not_found(services: BoundPorts) -> None:
    with trio.fail_after(10):
        async with raw_client(services["rooms"]) as client:
            code = (await client.ask("CREATE alice")).split(" ")[1]
            other = "1000" if code != "1000" else "1001"
            assert (await client.ask(f"EXISTS {other}")).startswith("ERR NOT_FOUND")
            assert (await client.ask(f"JOIN {other} bob")).startswith("ERR NOT_FOUND")


async def test_a_stuck_client_does_not_block_others(services: BoundPorts) -> None:
    with trio.fail_after(10):
        async with raw_client(services["rooms"]) as stuck:
            await stuck.send(b"CREATE al")  # never finishes its line
            await stuck.send(b"x" * 100_000)  # and floods without a newline
            async with RoomsClient.connect("127.0.0.1", services["rooms"]) as rooms:
                code, _ = await rooms.create("alice")
                assert await rooms.exists(code)


async def test_too_many_consecutive_errors_close_the_connection(services: BoundPorts) -> None:
    with trio.fail_after(10):
        async with raw_client(services["rooms"]) as client:
            await client.send(b"nonsense\n" * 20)
            replies = []
            while (line := await client.line()) is not None:
                replies.append(line)
            assert replies[-1].startswith("ERR TOO_MANY_ERRORS")
            assert len(replies) == 11


async def start(config: Config, nursery: trio.Nursery) -> BoundPorts:
    ports: BoundPorts = await nursery.start(functools.partial(run_services, config, ui=False))
    return ports


async def test_idle_connections_are_closed(config: Config) -> None:
    config = dataclasses.replace(config, tcp=TcpLimits(idle_timeout_s=0.3))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            ports = await start(config, nursery)
            async with raw_client(ports["rooms"]) as client:
                assert (await client.line() or "").startswith("ERR TIMEOUT")
                assert await client.closed()
            nursery.cancel_scope.cancel()


async def test_connection_limit_answers_busy(config: Config) -> None:
    config = dataclasses.replace(config, tcp=TcpLimits(max_connections=2))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            ports = await start(config, nursery)
            async with raw_client(ports["rooms"]) as a, raw_client(ports["rooms"]) as b:
                assert await a.ask("PING") == "PONG" and await b.ask("PING") == "PONG"
                async with raw_client(ports["rooms"]) as c:
                    assert (await c.line() or "").startswith("ERR BUSY")
                    assert await c.closed()
            nursery.cancel_scope.cancel()


async def test_rooms_and_tokens_survive_a_restart(config: Config) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            ports = await start(config, nursery)
            async with RoomsClient.connect("127.0.0.1", ports["rooms"]) as rooms:
                code, token = await rooms.create("alice")
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:
            ports = await start(config, nursery)
            async with RoomsClient.connect("127.0.0.1", ports["rooms"]) as rooms:
                assert await rooms.exists(code)
                assert await rooms.whoami(token) == (code, "alice")
                with pytest.raises(RequestRefused) as info:
                    await rooms.join(code, "alice")
                assert info.value.code == "NAME_TAKEN"
            nursery.cancel_scope.cancel()


async def test_a_storage_failure_is_answered_and_the_connection_goes_on(config: Config) -> None:
    # A full disk, simulated: SQLite may use no more pages than it has. Every service's
    # line loop answers ERR INTERNAL (it used to drop the connection without a word).
    async with running_service(config, rooms.serve) as (ports, ctx):
        with trio.fail_after(10):
            async with raw_client(ports["rooms"]) as client:
                code = (await client.ask("CREATE alice")).split(" ")[1]
                pages = ctx.store.db.call(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
                ctx.store.db.call(lambda c: c.execute(f"PRAGMA max_page_count={pages}"))
                for n in range(60):
                    reply = await client.ask(f"JOIN {code} user{n}")
                    if not reply.startswith("JOINED"):
                        break
                assert reply == "ERR INTERNAL storage failed; the request had no effect"
                ctx.store.db.call(lambda c: c.execute("PRAGMA max_page_count=1073741823"))
                assert (await client.ask(f"JOIN {code} bob")).startswith("JOINED")
