"""Trio client of the room manager (TCP 9013)."""

from __future__ import annotations

from collections.abc import Callable

from syncrox.client.lines import LineClient
from syncrox.errors import NOT_FOUND, LocalProtocolError, ProtocolError, RequestRefused
from syncrox.protocol import rooms as proto
from syncrox.protocol.names import validate_room_code, validate_token, validate_user


def checked(validator: Callable[[str], str], value: str) -> str:
    """Validate what we are about to send with the rules the server applies, so a bad name
    is refused here with the same error code instead of being sent at all."""
    try:
        return validator(value)
    except ProtocolError as exc:
        raise LocalProtocolError(exc.code, exc.message) from None


class RoomsClient(LineClient):
    """``async with RoomsClient.connect(host, port) as rooms: await rooms.create("alice")``"""

    async def create(self, user: str) -> tuple[str, str]:
        """Create a room; return ``(code, token)``, the creator's membership token."""
        code, token = proto.expect_reply(
            await self.request(f"CREATE {checked(validate_user, user)}"), "ROOM", 2
        )
        return code, token

    async def join(self, code: str, user: str, token: str | None = None) -> str:
        """Join a room (or re-join with ``token``); return the membership token."""
        line = f"JOIN {checked(validate_room_code, code)} {checked(validate_user, user)}"
        if token:
            line += f" {checked(validate_token, token)}"
        _, _, issued = proto.expect_reply(await self.request(line), "JOINED", 3)
        return issued

    async def exists(self, code: str) -> bool:
        try:
            await self.request(f"EXISTS {checked(validate_room_code, code)}")
        except RequestRefused as exc:
            if exc.code == NOT_FOUND:
                return False
            raise
        return True

    async def list_rooms(self) -> list[str]:
        return proto.parse_rooms_reply(await self.request("LIST"))

    async def whoami(self, token: str) -> tuple[str, str]:
        code, user = proto.expect_reply(
            await self.request(f"WHOAMI {checked(validate_token, token)}"), "MEMBER", 2
        )
        return code, user

    async def leave(self, token: str) -> str:
        _, code = proto.expect_reply(
            await self.request(f"LEAVE {checked(validate_token, token)}"), "OK", 2
        )
        return code

    async def ping(self) -> None:
        proto.expect_reply(await self.request("PING"), "PONG", 0)

    async def bye(self) -> None:
        proto.expect_reply(await self.request("BYE"), "OK", 1)
