"""The room registry against a real SQLite store.

Time-dependent tests use ``MockClock`` with manual jumps rather than autojump: the store
runs in worker threads, and an autojump clock would leap over a pending ``fail_after``
while a thread is busy, failing the test spuriously.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from syncrox.config import RoomsConfig
from syncrox.errors import LocalProtocolError
from syncrox.protocol.names import validate_token
from syncrox.services.registry import RoomRegistry, new_token
from syncrox.store import Store

PEER = "192.0.2.1"


class WallClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path) as opened:
        yield opened


def make_registry(store: Store, wall: WallClock | None = None, **config: object) -> RoomRegistry:
    return RoomRegistry(store.rooms, RoomsConfig(**config), wall_clock=wall or WallClock())  # type: ignore[arg-type]


async def refused(code: str, awaitable: object) -> None:
    with pytest.raises(LocalProtocolError) as info:
        await awaitable  # type: ignore[misc]
    assert info.value.code == code


async def test_create_gives_a_code_and_reserves_the_creator(store: Store) -> None:
    registry = make_registry(store)
    with trio.fail_after(10):
        member, token = await registry.create("alice", PEER)
        assert len(member.code) == 4 and member.code.isdigit() and member.reserved
        assert await registry.whoami(token) == member
        await refused("NAME_TAKEN", registry.join(member.code, "Alice", PEER))
        assert await registry.join(member.code, "alice", PEER, token) == token


async def test_join_then_leave_frees_the_name(store: Store) -> None:
    registry = make_registry(store)
    with trio.fail_after(10):
        member, _ = await registry.create("alice", PEER)
        token = await registry.join(member.code, "bob", PEER)
        await refused("NAME_TAKEN", registry.join(member.code, "bob", PEER))
        left = await registry.leave(token)
        assert (left.code, left.user) == (member.code, "bob")
        await registry.join(member.code, "bob", PEER)
        await refused("BAD_TOKEN", registry.leave(token))


async def test_admission_by_code_respects_reserved_names(store: Store) -> None:
    registry = make_registry(store)
    with trio.fail_after(10):
        member, token = await registry.create("alice", PEER)
        guest = await registry.admit(member.code, "carol", PEER)
        assert guest.user == "carol" and not guest.reserved
        await refused("NAME_TAKEN", registry.admit(member.code, "alice", PEER))
        assert (await registry.admit(member.code, "alice", PEER, token)).reserved
        other, other_token = await registry.create("dave", PEER)
        await refused("BAD_TOKEN", registry.admit(member.code, "dave", PEER, other_token))
        unused = next(c for c in ("1000", "1001", "1002") if c not in {member.code, other.code})
        await refused("NOT_FOUND", registry.admit(unused, "x", PEER))


async def test_parallel_guesses_cannot_outrun_the_rate_limit(store: Store) -> None:
    # Each attempt is charged before the store answers: 100 guesses in parallel from one
    # address get as many answers as the bucket holds (all 100 used to be answered).
    registry = make_registry(store, join_failure_burst=3, join_failure_refill_s=3600)
    outcomes: list[str] = []

    async def guess(code: str) -> None:
        try:
            await registry.admit(code, "guest", PEER)
            outcomes.append("ADMITTED")
        except LocalProtocolError as exc:
            outcomes.append(exc.code)

    with trio.fail_after(30):
        member, _ = await registry.create("alice", PEER)
        async with trio.open_nursery() as nursery:
            for n in range(100):
                code = str(1000 + n)
                nursery.start_soon(guess, code if code != member.code else "9999")
    assert outcomes.count("NOT_FOUND") == 3
    assert outcomes.count("RATE_LIMITED") == 97


async def test_one_ipv6_64_shares_one_bucket(store: Store) -> None:
    # Whoever holds one address of a /64 usually holds them all: one bucket for the lot.
    registry = make_registry(store, join_failure_burst=2, join_failure_refill_s=3600)
    with trio.fail_after(30):
        for host in ("2001:db8:5:6::1", "2001:db8:5:6::2"):
            await refused("BAD_TOKEN", registry.admit_token("A" * 32, host))
        await refused("RATE_LIMITED", registry.admit_token("A" * 32, "2001:db8:5:6::3"))
        await refused("BAD_TOKEN", registry.admit_token("A" * 32, "2001:db8:5:7::1"))


async def test_parallel_correct_attempts_are_all_admitted(store: Store) -> None:
    # One frontend logs many users in from one address: successes stay free.
    registry = make_registry(store, join_failure_burst=3, join_failure_refill_s=3600)
    with trio.fail_after(30):
        _, token = await registry.create("alice", PEER)
        admitted: list[str] = []

        async def admit() -> None:
            admitted.append((await registry.admit_token(token, PEER)).user)

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(admit)
        assert admitted == ["alice"] * 20


async def test_failed_guesses_are_rate_limited_per_address(
    store: Store, mock_clock: trio.testing.MockClock
) -> None:
    registry = make_registry(store, join_failure_burst=3, join_failure_refill_s=10)
    with trio.fail_after(100):  # virtual seconds: the jump below counts towards it
        member, _ = await registry.create("alice", PEER)
        for _ in range(50):  # successes are free
            await registry.admit(member.code, "guest", PEER)
        wrong = "9999" if member.code != "9999" else "9998"
        for _ in range(3):
            await refused("NOT_FOUND", registry.admit(wrong, "guest", PEER))
        await refused("RATE_LIMITED", registry.admit(member.code, "guest", PEER))
        await registry.admit(member.code, "guest", "198.51.100.7")  # other addresses unaffected
        mock_clock.jump(10)
        await registry.admit(member.code, "guest", PEER)


async def test_a_reserved_name_is_not_a_failed_guess(store: Store) -> None:
    # A web UI user who reloads the page loses their token and retries their name: that
    # must not use up the (shared) failed-guess bucket.
    registry = make_registry(store, join_failure_burst=3, join_failure_refill_s=10)
    with trio.fail_after(10):
        member, _ = await registry.create("alice", PEER)
        for _ in range(10):
            await refused("NAME_TAKEN", registry.join(member.code, "alice", PEER))
            await refused("NAME_TAKEN", registry.admit(member.code, "alice", PEER))
        wrong = "9999" if member.code != "9999" else "9998"
        await refused("NOT_FOUND", registry.join(wrong, "bob", PEER))  # not yet limited


async def test_room_creation_is_rate_limited(
    store: Store, mock_clock: trio.testing.MockClock
) -> None:
    registry = make_registry(store, create_burst=2, create_refill_s=5)
    with trio.fail_after(100):  # virtual seconds: the jump below counts towards it
        await registry.create("a", PEER)
        await registry.create("b", PEER)
        await refused("RATE_LIMITED", registry.create("c", PEER))
        mock_clock.jump(5)
        await registry.create("c", PEER)


async def test_concurrent_creates_never_share_a_code(store: Store) -> None:
    registry = make_registry(store, create_burst=1000)
    codes: list[str] = []

    async def create(index: int) -> None:
        member, _ = await registry.create(f"user{index}", PEER)
        codes.append(member.code)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for index in range(200):
                nursery.start_soon(create, index)
    assert len(set(codes)) == 200


async def test_when_every_code_is_taken_create_says_so(store: Store) -> None:
    registry = make_registry(store)
    with trio.fail_after(30):
        await store.db.run(
            lambda c: c.executemany(
                "INSERT INTO rooms VALUES (?, 'x', 0, 0)", [(str(n),) for n in range(1000, 9999)]
            )
        )
        member, _ = await registry.create("last", PEER)  # exactly one code was left
        assert member.code == "9999"
        await refused("ROOMS_FULL", registry.create("one_too_many", PEER))


async def test_rooms_have_a_member_limit(store: Store) -> None:
    registry = make_registry(store, max_members_per_room=2)
    with trio.fail_after(10):
        member, _ = await registry.create("a", PEER)
        await registry.join(member.code, "b", PEER)
        await refused("ROOM_FULL", registry.join(member.code, "c", PEER))


async def test_idle_members_lapse_and_empty_rooms_expire(store: Store) -> None:
    wall = WallClock()
    registry = make_registry(store, wall, member_idle_expiry_s=100, room_idle_expiry_s=150)
    with trio.fail_after(10):
        member, token = await registry.create("alice", PEER)
        wall.now += 99
        assert await registry.expire_once() == ([], [])
        wall.now += 2  # membership now idle for 101 s; the room loses its last member
        lapsed, dropped = await registry.expire_once()
        assert [m.user for m in lapsed] == ["alice"] and dropped == []
        await refused("BAD_TOKEN", registry.whoami(token))
        wall.now += 49  # 150 s since the room's last activity (its creation)
        assert await registry.expire_once() == ([], [])
        wall.now += 1
        assert await registry.expire_once() == ([], [member.code])
        assert not await registry.exists(member.code, PEER)


async def test_an_address_holds_a_bounded_number_of_live_rooms(store: Store) -> None:
    # One address once could hold every one of the 9000 codes (ROOMS_FULL for all others).
    wall = WallClock()
    registry = make_registry(
        store, wall, max_live_rooms_per_address=2, member_idle_expiry_s=10, room_idle_expiry_s=10
    )
    with trio.fail_after(10):
        first, _ = await registry.create("a", PEER)
        await registry.create("b", PEER)
        await refused("RATE_LIMITED", registry.create("c", PEER))
        await registry.create("d", "198.51.100.7")  # another address
        wall.now += 11
        _, dropped = await registry.expire_once()  # members lapse, the empty rooms go
        assert first.code in dropped
        await registry.create("e", PEER)  # room again


async def test_presence_keeps_members_and_rooms_alive(store: Store) -> None:
    wall = WallClock()
    registry = make_registry(store, wall, member_idle_expiry_s=10, room_idle_expiry_s=10)
    with trio.fail_after(10):
        member, token = await registry.create("alice", PEER)
        guest = await registry.admit(member.code, "guest", PEER)
        async with registry.presence(await registry.whoami(token)), registry.presence(guest):
            wall.now += 1000
            assert await registry.expire_once() == ([], [])
        # Leaving the presence touched the membership: it lapses only after a new idle period.
        assert await registry.expire_once() == ([], [])
        assert registry.is_busy(member.code) is False


def test_tokens_never_start_with_a_dash() -> None:
    # `--token -Og...` is an option to argparse: the CLI could not take such a token.
    tokens = [new_token() for _ in range(5000)]  # one in 64 would, by chance
    assert not any(token.startswith("-") for token in tokens)
    assert all(len(token) == 32 and validate_token(token) == token for token in tokens)
    assert len(set(tokens)) == len(tokens)
