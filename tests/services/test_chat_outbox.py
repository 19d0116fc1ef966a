"""The outbox alone, over in-memory lockstep streams in virtual time (no sockets, so the
writer task does every send: the path a socket takes once its kernel buffer is full)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
import trio
import trio.testing

from syncrox.net.lines import PeerTooSlow
from syncrox.protocol.framing import encode_line
from syncrox.services.chat_outbox import Outbox

MAX_BYTES = 100
THRESHOLD = 20


async def no_images(digest: str) -> AsyncGenerator[bytes, None]:
    yield digest.encode()


def make_outbox(stream: trio.abc.Stream, send_timeout_s: float = 5.0) -> Outbox:
    return Outbox(
        stream,
        peer="test",
        max_bytes=MAX_BYTES,
        reply_threshold=THRESHOLD,
        send_timeout_s=send_timeout_s,
        read_image=no_images,
        download_slots=trio.CapacityLimiter(1),
    )


async def write_then_close(outbox: Outbox, stream: trio.abc.Stream) -> None:
    async with stream:
        await outbox.run()


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_overflow_drops_the_backlog_and_ends_with_a_notice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):  # virtual time: a hang fails at once
        ours, theirs = trio.testing.lockstep_stream_pair()
        outbox = make_outbox(ours)
        line = encode_line("MSG " + "x" * 25)  # 30 bytes
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_then_close, outbox, ours)
            assert outbox.broadcast(line)  # the writer takes it and blocks: nobody reads yet
            await trio.testing.wait_all_tasks_blocked()
            assert all(outbox.broadcast(line) for _ in range(3))  # 90 of 100 bytes queued
            assert not outbox.broadcast(line)  # 120 > 100: overflow
            assert outbox.overflowed
            assert outbox.closed
            assert not outbox.broadcast(line)  # ignored from now on, never raises
            received = await read_all(theirs)
        assert received == line + b"ERR OVERFLOW you fell too far behind; closing\n"


async def test_replies_wait_for_the_client_to_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):  # virtual time: a hang fails at once
        ours, theirs = trio.testing.lockstep_stream_pair()
        outbox = make_outbox(ours)
        replied = 0

        async def reply_many() -> None:
            nonlocal replied
            for n in range(10):
                await outbox.reply(f"PONG {n:05d}")  # 11 bytes each
                replied += 1
            outbox.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_then_close, outbox, ours)
            nursery.start_soon(reply_many)
            await trio.sleep(3)  # less than the send deadline
            # The writer holds what it took; the queue stays within one reply of the
            # threshold; the rest of the replies wait for the client to read.
            assert 1 <= replied < 10
            assert outbox.queued_bytes <= THRESHOLD + 11
            assert not outbox.overflowed
            received = await read_all(theirs)
        assert received == b"".join(encode_line(f"PONG {n:05d}") for n in range(10))


async def test_a_peer_that_never_reads_is_cut_off_at_the_send_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):  # virtual time: a hang fails at once
        ours, _theirs = trio.testing.lockstep_stream_pair()
        outbox = make_outbox(ours, send_timeout_s=5.0)
        outbox.broadcast(b"MSG stuck\n")
        start = trio.current_time()
        with pytest.raises(PeerTooSlow):
            await outbox.run()
        assert trio.current_time() - start == pytest.approx(5.0)


async def test_the_writer_coalesces_what_is_queued_into_one_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):  # virtual time: a hang fails at once
        sends: list[int] = []
        ours, theirs = trio.testing.memory_stream_pair()
        assert isinstance(ours.send_stream, trio.testing.MemorySendStream)
        real_send_all = ours.send_stream.send_all

        async def counting_send_all(data: bytes | bytearray | memoryview) -> None:
            sends.append(len(data))
            await real_send_all(data)

        ours.send_stream.send_all = counting_send_all  # type: ignore[method-assign]
        outbox = make_outbox(ours)
        for n in range(5):
            outbox.broadcast(encode_line(f"MSG {n}"))
        outbox.close()
        await outbox.run()
        assert sends == [30]
        assert await theirs.receive_some() == b"".join(encode_line(f"MSG {n}") for n in range(5))


async def test_image_replies_stream_from_the_reader(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):  # virtual time: a hang fails at once
        ours, theirs = trio.testing.memory_stream_pair()
        outbox = make_outbox(ours)
        await outbox.reply_image("IMG_DATA 1 3 image/png a.png ", "abc", weight=4)
        outbox.close()
        await outbox.run()
        assert await theirs.receive_some() == b"IMG_DATA 1 3 image/png a.png YWJj\n"


async def three_pieces(digest: str) -> AsyncGenerator[bytes, None]:
    for piece in (b"abc", b"def", b"ghi"):
        yield piece


async def test_a_slow_image_reader_holds_no_download_slot_while_it_reads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One slot, shared server-wide. A peer that takes nothing (a lockstep stream nobody
    # reads) used to keep it for the whole image, and everyone's GET_IMG waited on it.
    slots = trio.CapacityLimiter(1)

    def outbox_on(stream: trio.abc.Stream) -> Outbox:
        return Outbox(
            stream, peer="test", max_bytes=MAX_BYTES, reply_threshold=THRESHOLD,
            send_timeout_s=3600.0, read_image=three_pieces, download_slots=slots,
        )  # fmt: skip

    with trio.fail_after(600):
        stuck, _never_read = trio.testing.lockstep_stream_pair()
        ours, theirs = trio.testing.memory_stream_pair()
        slow, fast = outbox_on(stuck), outbox_on(ours)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow.run)
            await slow.reply_image("IMG_DATA 1 9 image/png a.png ", "a", weight=12)
            await trio.testing.wait_all_tasks_blocked()
            await fast.reply_image("IMG_DATA 2 9 image/png b.png ", "b", weight=12)
            fast.close()
            with trio.fail_after(10):
                await write_then_close(fast, ours)
            assert await read_all(theirs) == b"IMG_DATA 2 9 image/png b.png YWJjZGVmZ2hp\n"
            nursery.cancel_scope.cancel()
