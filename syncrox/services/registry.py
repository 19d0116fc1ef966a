"""Who may enter which room: the one admission authority every service consults.

Theory of operation
-------------------
A room is a 4-digit code. ``JOIN`` (and ``CREATE``, for the creator) gives a *membership
token* that reserves the user name in that room: from then on, nobody can enter that room
under that name without the token. Where a service's protocol carries only the room code
(the seed's ``HELLO <user> <room>``), knowing the code admits you under any name that is
not reserved.

Guessing codes is slowed by a per-address bucket that only failures drain: a wrong code,
a wrong token, or a reserved name costs one token, and an address whose bucket is empty is
refused (``RATE_LIMITED``) until it refills. Legitimate joins cost nothing.

Services hold a *presence* (``async with registry.presence(member)``) while a connection
uses a room; a held membership never lapses and a room with a live connection never
expires. Without presence, memberships lapse after ``member_idle_expiry_s`` and a room with
no members is deleted after ``room_idle_expiry_s``.

All services run in one process and call this object directly, so admission never waits on
a network round trip (the original's UDP loop blocked on a TCP call per packet).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from syncrox.config import RoomsConfig
from syncrox.errors import (
    BAD_TOKEN,
    NAME_TAKEN,
    NOT_FOUND,
    RATE_LIMITED,
    ROOM_FULL,
    ROOMS_FULL,
    LocalProtocolError,
)
from syncrox.logs import log_event
from syncrox.protocol.names import user_key, validate_room_code, validate_token, validate_user
from syncrox.ratelimit import KeyedBuckets, address_key
from syncrox.store.rooms import JoinOutcome, MemberRecord, RoomStore

logger = logging.getLogger("syncrox.rooms")

ALL_CODES = frozenset(str(code) for code in range(1000, 10000))
RANDOM_CODE_TRIES = 16


@dataclass(frozen=True)
class Member:
    """Someone admitted to a room. ``token_hash`` is ``None`` when admitted by code alone."""

    code: str
    user: str
    token_hash: str | None = None

    @property
    def reserved(self) -> bool:
        return self.token_hash is not None


@dataclass
class _Guess:
    wrong: bool = False


@dataclass
class _Turn:
    """An address's attempts in progress take turns (``RoomRegistry._guess``)."""

    lock: trio.Lock = field(default_factory=trio.Lock)
    waiting: int = 0


def new_token() -> str:
    """A fresh membership token: 192 random bits as 32 URL-safe base64 characters, never
    starting with ``-``, which a command line would take for an option (``--token -Og...``
    is refused by argparse: found by a CLI test that failed one time in 64)."""
    while True:
        token = secrets.token_urlsafe(24)
        if not token.startswith("-"):
            return token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class RoomRegistry:
    def __init__(
        self,
        store: RoomStore,
        config: RoomsConfig,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config
        self._wall_clock = wall_clock
        self._failures = KeyedBuckets(config.join_failure_burst, config.join_failure_refill_s)
        self._guessing: dict[str, _Turn] = {}  # address -> its attempts taking turns
        self._creates = KeyedBuckets(config.create_burst, config.create_refill_s)
        # Who created each room still alive (since start-up: rooms from before a restart
        # are not counted, which only ever errs towards admitting).
        self._creators: dict[str, str] = {}  # room code -> creator's address key
        self._live_rooms: Counter[str] = Counter()  # address key -> rooms it created
        self._held: Counter[str] = Counter()  # token hash -> live connections using it
        self._busy: Counter[str] = Counter()  # room code -> live connections in it

    # ------------------------------------------------------------------ room lifecycle

    async def create(self, user: str, peer_host: str) -> tuple[Member, str]:
        """Create a room with ``user`` as its first member; return the member and token."""
        validate_user(user)
        key = address_key(peer_host)
        held, most = self._live_rooms[key], self._config.max_live_rooms_per_address
        if held >= most:
            raise LocalProtocolError(
                RATE_LIMITED, f"this address holds {held} rooms, at most {most}; reuse one"
            )
        wait = self._creates.take(key, trio.current_time())
        if wait:
            raise LocalProtocolError(RATE_LIMITED, f"too many new rooms, retry in {wait:.0f} s")
        token = new_token()
        for code in await self._candidate_codes():
            record = self._member_record(code, user, token)
            if await self._store.insert_room(code, record):
                log_event(logger, "room.create", code=code, user=user, peer=peer_host)
                self._creators[code] = key
                self._live_rooms[key] += 1
                return Member(code, user, record.token_hash), token
        raise LocalProtocolError(ROOMS_FULL, "every room code is in use, try again later")

    async def _candidate_codes(self) -> list[str]:
        """Random codes to try in turn; when random picks keep colliding, the free ones."""
        picks = [str(1000 + secrets.randbelow(9000)) for _ in range(RANDOM_CODE_TRIES)]
        free = sorted(ALL_CODES - await self._store.room_codes())
        tail = (
            [free[secrets.randbelow(len(free))] for _ in range(RANDOM_CODE_TRIES)] if free else []
        )
        return picks + tail

    async def join(self, code: str, user: str, peer_host: str, token: str | None = None) -> str:
        """Join ``code`` as ``user``; return the membership token (the same one on rejoin)."""
        validate_room_code(code)
        validate_user(user)
        async with self._guess(peer_host) as guess:
            if token is not None:
                await self._admit_with_token(code, user, token, guess)
                return token
            token = new_token()
            outcome = await self._store.insert_member(
                self._member_record(code, user, token), self._config.max_members_per_room
            )
            # Only a code that does not exist was a guess. A reserved name means the code
            # was right; charging it locked a reloaded web UI's user (who lost the token)
            # and, through the UI host's shared bucket, everyone else out.
            guess.wrong = outcome is JoinOutcome.NO_ROOM
        if outcome is JoinOutcome.JOINED:
            log_event(logger, "room.join", code=code, user=user, peer=peer_host)
            return token
        if outcome is JoinOutcome.FULL:
            raise LocalProtocolError(ROOM_FULL, f"room {code} is full")
        if outcome is JoinOutcome.NO_ROOM:
            raise LocalProtocolError(NOT_FOUND, f"no room {code}")
        raise LocalProtocolError(NAME_TAKEN, f"{user} is taken in room {code}")

    async def exists(self, code: str, peer_host: str) -> bool:
        """Whether a room exists. A miss counts as a failed guess."""
        validate_room_code(code)
        async with self._guess(peer_host) as guess:
            guess.wrong = await self._store.get_room(code) is None
        return not guess.wrong

    async def leave(self, token: str) -> Member:
        validate_token(token)
        record = await self._store.delete_member(hash_token(token), self._wall_clock())
        if record is None:
            raise LocalProtocolError(BAD_TOKEN, "no membership for that token")
        log_event(logger, "room.leave", code=record.code, user=record.user)
        return Member(record.code, record.user, record.token_hash)

    async def visible_rooms(self, codes: set[str]) -> list[str]:
        """Which of ``codes`` still exist (a connection may list only rooms it entered)."""
        existing = await self._store.room_codes()
        return sorted(codes & existing)

    # ------------------------------------------------------------------ admission

    async def admit(self, code: str, user: str, peer_host: str, token: str | None = None) -> Member:
        """Admit by room code (and token, if given) without creating a membership."""
        validate_room_code(code)
        validate_user(user)
        async with self._guess(peer_host) as guess:
            if token is not None:
                return await self._admit_with_token(code, user, token, guess)
            if await self._store.get_room(code) is None:
                guess.wrong = True
                raise LocalProtocolError(NOT_FOUND, f"no room {code}")
            if await self._store.member_by_name(code, user_key(user)) is not None:
                raise LocalProtocolError(
                    NAME_TAKEN, f"{user} is reserved in room {code}; present its token"
                )
            return Member(code, user)

    async def admit_token(self, token: str, peer_host: str) -> Member:
        """Admit the holder of a membership token to its room."""
        validate_token(token)
        async with self._guess(peer_host) as guess:
            return await self._member_for_token(token, guess)

    async def _member_for_token(self, token: str, guess: _Guess) -> Member:
        record = await self._store.member_by_token(hash_token(token))
        if record is None:
            guess.wrong = True
            raise LocalProtocolError(BAD_TOKEN, "no membership for that token")
        return Member(record.code, record.user, record.token_hash)

    async def _admit_with_token(self, code: str, user: str, token: str, guess: _Guess) -> Member:
        member = await self._member_for_token(token, guess)
        if member.code != code or user_key(member.user) != user_key(user):
            guess.wrong = True
            raise LocalProtocolError(BAD_TOKEN, f"that token is not {user}'s in room {code}")
        return member

    async def whoami(self, token: str) -> Member:
        validate_token(token)
        record = await self._store.member_by_token(hash_token(token))
        if record is None:
            raise LocalProtocolError(BAD_TOKEN, "no membership for that token")
        return Member(record.code, record.user, record.token_hash)

    @asynccontextmanager
    async def presence(self, member: Member) -> AsyncIterator[Member]:
        """Hold ``member``'s room (and membership) alive while a connection uses it."""
        self._busy[member.code] += 1
        if member.token_hash:
            self._held[member.token_hash] += 1
        try:
            await self._touch(member)
            yield member
        finally:
            self._busy[member.code] -= 1
            if not self._busy[member.code]:
                del self._busy[member.code]
            if member.token_hash:
                self._held[member.token_hash] -= 1
                if not self._held[member.token_hash]:
                    del self._held[member.token_hash]
            with trio.CancelScope(shield=True):
                await self._touch(member)

    def is_busy(self, code: str) -> bool:
        return self._busy[code] > 0

    async def _touch(self, member: Member) -> None:
        tokens = [member.token_hash] if member.token_hash else []
        await self._store.touch(member.code, tokens, self._wall_clock())

    # ------------------------------------------------------------------ rate limits, expiry

    @asynccontextmanager
    async def _guess(self, peer_host: str) -> AsyncIterator[_Guess]:
        """One attempt at a room code or token from ``peer_host``; a wrong one (``guess.wrong``
        when the block ends) takes a token from the address's failure bucket. Attempts of
        one address take turns: checked in parallel, they all passed a nearly empty bucket
        while the store answered (charging each up front instead would refuse parallel
        *correct* attempts, which are free: one frontend logs many users in).
        """
        key = address_key(peer_host)
        turn = self._guessing.setdefault(key, _Turn())
        turn.waiting += 1
        try:
            async with turn.lock:
                wait = self._failures.wait_s(key, trio.current_time())
                if wait:
                    log_event(logger, "join.rate_limited", logging.WARNING, peer=peer_host)
                    raise LocalProtocolError(
                        RATE_LIMITED, f"too many failed attempts, retry in {wait:.0f} s"
                    )
                guess = _Guess()
                try:
                    yield guess
                finally:
                    if guess.wrong:
                        self._failures.take(key, trio.current_time())
        finally:
            turn.waiting -= 1
            if not turn.waiting:
                del self._guessing[key]

    def _member_record(self, code: str, user: str, token: str) -> MemberRecord:
        now = self._wall_clock()
        return MemberRecord(hash_token(token), code, user, user_key(user), now, now)

    async def expire_once(self) -> tuple[list[MemberRecord], list[str]]:
        now = self._wall_clock()
        lapsed, dropped = await self._store.expire(
            member_idle_before=now - self._config.member_idle_expiry_s,
            room_idle_before=now - self._config.room_idle_expiry_s,
            held_tokens=set(self._held),
            busy_rooms=set(self._busy),
        )
        for member in lapsed:
            log_event(logger, "member.expire", code=member.code, user=member.user)
        for code in dropped:
            log_event(logger, "room.expire", code=code)
            creator = self._creators.pop(code, None)
            if creator is not None:
                self._live_rooms[creator] -= 1
                if not self._live_rooms[creator]:
                    del self._live_rooms[creator]
        return lapsed, dropped

    async def run_expiry(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            await self.expire_once()
            await trio.sleep(self._config.expiry_sweep_interval_s)
