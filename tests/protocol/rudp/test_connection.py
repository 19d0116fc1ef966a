"""The connection state machine: handshake and teardown edge cases, one datagram at a time."""

from __future__ import annotations

import random

import pytest

from syncrox.protocol.rudp.codec import decode_datagram, encode_json
from syncrox.protocol.rudp.connection import (
    STALLED,
    TRANSITIONS,
    Connection,
    Direction,
    Limits,
    Role,
    State,
    Trigger,
)
from syncrox.protocol.rudp.packets import Packet, PacketType
from tests.protocol.rudp.harness import NAME, ROOM, SESSION, FakeNetwork, Pair, make_file


def packets(conn: Connection, now: float = 0.0) -> list[Packet]:
    return [decode_datagram(d) for d in conn.datagrams_to_send(now)]


def download_pair(data: bytes = b"x" * 5000) -> Pair:
    return Pair(data, Direction.DOWNLOAD, FakeNetwork(random.Random(1)), mss=1000)


def test_every_state_has_a_way_out() -> None:
    for state in State:
        if state in (State.CLOSED, State.FAILED):
            continue
        assert (state, Trigger.RST) in TRANSITIONS and (state, Trigger.GIVE_UP) in TRANSITIONS


def test_duplicate_syn_gets_the_same_syn_ack_and_one_session() -> None:
    pair = download_pair()
    pair.client.connect(0.0)
    [syn] = packets(pair.client)
    pair.server.receive(syn, 0.1)
    [first] = packets(pair.server, 0.1)
    pair.server.receive(syn, 0.2)
    [second] = packets(pair.server, 0.2)
    assert first == second and first.type is PacketType.SYN_ACK
    assert pair.server.state is State.SYN_RCVD


def test_lost_handshake_ack_is_repaired_by_the_syn_ack_retransmission() -> None:
    pair = download_pair()
    pair.client.connect(0.0)
    [syn] = packets(pair.client)
    pair.server.receive(syn, 0.01)
    [syn_ack] = packets(pair.server, 0.01)
    pair.client.receive(syn_ack, 0.02)
    packets(pair.client, 0.02)  # the handshake ACK is lost
    timer = pair.server.get_timer()
    assert timer is not None
    pair.server.handle_timer(timer)
    [again] = packets(pair.server, timer)
    assert again == syn_ack
    pair.client.receive(again, timer + 0.01)
    [hs_ack] = packets(pair.client, timer + 0.01)
    assert (hs_ack.type, hs_ack.seq) == (PacketType.ACK, 0)
    pair.server.receive(hs_ack, timer + 0.02)
    assert pair.server.state is State.ESTABLISHED
    data = packets(pair.server, timer + 0.02)
    assert data and data[0].type is PacketType.DATA


def test_handshake_ack_never_reaches_rtt_or_duplicate_state() -> None:
    pair = download_pair()
    pair.run()
    assert pair.client.state is State.CLOSED and bytes(pair.delivered) == pair.data
    # Replay the handshake ACK many times at the end: the sender must not count it.
    sender = pair.server.sender
    assert sender is not None
    before = (sender.dupacks, sender.rtt.srtt_ms, sender.stats.stale_acks)
    for _ in range(5):
        pair.server.receive(Packet(PacketType.ACK, SESSION, seq=0, ack=0), pair.now)
    assert (sender.dupacks, sender.rtt.srtt_ms, sender.stats.stale_acks) == before


def test_syn_for_another_room_is_refused_with_rst() -> None:
    server = Connection(
        role=Role.SERVER, direction=Direction.UPLOAD, session_id=SESSION, room=ROOM,
        filename=NAME, limits=Limits(), now=0.0, size=10, sha256="ab" * 32,
    )  # fmt: skip
    server.receive(Packet(PacketType.SYN, SESSION, room="1111", filename=NAME, size=10,
                          sha256="ab" * 32), 0.0)  # fmt: skip
    [reset] = packets(server)
    assert reset.type is PacketType.RST and server.state is State.FAILED
    assert server.failure is not None and server.failure[0] == "BAD_HANDSHAKE"


def test_no_answer_fails_clearly_after_bounded_retries() -> None:
    client = Connection(
        role=Role.CLIENT, direction=Direction.DOWNLOAD, session_id=SESSION, room=ROOM,
        filename=NAME, limits=Limits(max_retries=3), now=0.0,
    )  # fmt: skip
    client.connect(0.0)
    sent = len(packets(client))
    while not client.terminal:
        timer = client.get_timer()
        assert timer is not None
        client.handle_timer(timer)
        sent += sum(p.type is PacketType.SYN for p in packets(client, timer))
    assert sent == 4  # the SYN and three retransmissions, with back-off
    assert client.failure is not None and client.failure[0] == "TIMEOUT"


def test_datagrams_not_legal_here_are_dropped_and_counted() -> None:
    pair = download_pair()
    pair.client.connect(0.0)
    pair.client.receive(Packet(PacketType.DATA, SESSION, seq=1, payload=b"x"), 0.0)
    pair.client.receive(Packet(PacketType.FIN_ACK, SESSION), 0.0)
    pair.server.receive(Packet(PacketType.SYN_ACK, SESSION), 0.0)
    assert pair.client.stats.dropped == 2 and pair.server.stats.dropped == 1
    assert pair.client.state is State.SYN_SENT and pair.server.state is State.IDLE


def test_receiver_never_accepts_a_chunk_outside_the_file_or_of_the_wrong_length() -> None:
    pair = Pair(b"y" * 2500, Direction.UPLOAD, FakeNetwork(random.Random(1)), mss=1000)
    pair.client.connect(0.0)
    for packet in packets(pair.client):
        pair.server.receive(packet, 0.0)
    for bad in (
        Packet(PacketType.DATA, SESSION, seq=4, payload=b"y" * 500),  # beyond total (3)
        Packet(PacketType.DATA, SESSION, seq=3, payload=b"y" * 1000),  # last chunk is 500
        Packet(PacketType.DATA, SESSION, seq=1, payload=b"y" * 10),
        Packet(PacketType.FIN, SESSION, seq=4),  # FIN before the data
    ):
        assert pair.server.receive(bad, 0.1) is False
    # A DATA completes the handshake only if it is a chunk of this file, and a FIN only if
    # every chunk arrived (an empty file): this early FIN is refused and completes nothing.
    assert pair.server.stats.rejected == 4 and pair.server.stats.dropped == 0
    assert pair.server.stats.reasons == {"BAD_DATAGRAM": 4}
    assert pair.server.receiver is not None and pair.server.receiver.ack == 0
    assert pair.server.state is State.SYN_RCVD


def test_zero_length_file_handshake_then_fin() -> None:
    for direction in Direction:
        pair = Pair(b"", direction, FakeNetwork(random.Random(2)))
        pair.run()
        assert pair.client.state is State.CLOSED and pair.server.state is State.CLOSED


def test_upload_resumes_from_the_chunks_the_server_holds() -> None:
    data = make_file(10_000, seed=4)
    pair = Pair(data, Direction.UPLOAD, FakeNetwork(random.Random(3)), mss=1000)
    pair.server.resume_bytes, pair.server.resume_mss = 6000, 1000
    pair.delivered += data[:6000]  # what the server stored before the interruption
    pair.run()
    assert pair.client.state is State.CLOSED and bytes(pair.delivered) == data
    assert pair.client.resume_chunks == 6
    sender = pair.client.sender
    assert sender is not None and sender.stats.chunks_sent == 4


def test_download_resumes_from_the_clients_partial_file() -> None:
    data = make_file(10_000, seed=5)
    pair = Pair(data, Direction.DOWNLOAD, FakeNetwork(random.Random(3)), mss=1000)
    pair.client.resume_bytes = 7500  # a partial .part file: 7 whole chunks are kept
    pair.delivered += data[:7000]
    pair.run()
    assert pair.client.resume_chunks == 7 and bytes(pair.delivered) == data
    assert pair.server.sender is not None and pair.server.sender.stats.chunks_sent == 3


def test_rst_from_the_peer_fails_the_transfer_without_answering() -> None:
    pair = download_pair()
    pair.client.connect(0.0)
    packets(pair.client)
    pair.client.receive(decode_datagram(encode_json(Packet(PacketType.RST, SESSION,
                                                           error="NO_SESSION"))), 0.1)  # fmt: skip
    assert pair.client.state is State.FAILED and pair.client.failure == (
        "NO_SESSION", "the peer reset the transfer",
    )  # fmt: skip
    assert packets(pair.client, 0.1) == []


def test_receive_accepts_only_what_is_valid_for_the_state() -> None:
    # What ``receive`` accepts is what may move the edge's reply address (NAT rebinding);
    # anything else merely carrying the session id must not.
    limits = Limits(buffer_bytes=4000)  # a 4-chunk buffer, so "beyond reach" is near
    pair = Pair(b"y" * 9500, Direction.UPLOAD, FakeNetwork(random.Random(1)), mss=1000,
                limits=limits)  # fmt: skip
    client, server = pair.client, pair.server
    client.connect(0.0)
    [syn] = packets(client)
    assert server.receive(syn, 0.0) is True
    assert server.receive(syn, 0.0) is False  # a repeat is answered, but proves nothing
    syn_ack = packets(server)[0]
    assert client.receive(syn_ack, 0.01) is True
    assert client.receive(syn_ack, 0.01) is False
    hs_ack, *_ = packets(client, 0.01)
    for bad in (
        Packet(PacketType.DATA, SESSION, seq=1, payload=b"y" * 10),  # wrong length
        Packet(PacketType.DATA, SESSION, seq=11, payload=b"y" * 500),  # beyond the file
        Packet(PacketType.ACK, SESSION, seq=1, ack=1),  # an ACK to the data receiver
        Packet(PacketType.SYN_ACK, SESSION),  # a client's packet
        Packet(PacketType.FIN, SESSION, seq=11),  # before the data
    ):
        assert server.receive(bad, 0.02) is False, bad
    assert server.state is State.SYN_RCVD  # garbage does not complete the handshake
    assert server.receive(hs_ack, 0.02) is True
    assert server.receive(hs_ack, 0.02) is False
    chunk = Packet(PacketType.DATA, SESSION, seq=1, payload=b"y" * 1000)
    assert server.receive(chunk, 0.03) is True
    assert server.receive(chunk, 0.03) is True  # a duplicate: its ACK may have been lost
    far = Packet(PacketType.DATA, SESSION, seq=9, payload=b"y" * 1000)
    assert server.receive(far, 0.03) is False  # no sender goes beyond the buffer's reach
    near = Packet(PacketType.DATA, SESSION, seq=5, payload=b"y" * 1000)
    assert server.receive(near, 0.03) is True
    # An RST ends the session and nothing is sent after it: no address to confirm.
    assert server.receive(Packet(PacketType.RST, SESSION, error="X"), 0.04) is False
    assert server.state is State.FAILED


def test_the_data_sender_accepts_only_acks_of_data_in_flight() -> None:
    pair = Pair(b"y" * 5000, Direction.UPLOAD, FakeNetwork(random.Random(1)), mss=1000)
    client = pair.client
    shake_hands(pair)
    sent = packets(client, 0.01)
    assert [p.seq for p in sent if p.type is PacketType.DATA] == [1]  # cwnd 1
    beyond = Packet(PacketType.ACK, SESSION, seq=3, ack=3, rwnd=10)  # chunk 3 never sent
    assert client.receive(beyond, 0.02) is False
    assert client.receive(Packet(PacketType.ACK, SESSION, seq=1, ack=1, rwnd=10), 0.02) is True
    assert client.receive(Packet(PacketType.DATA, SESSION, seq=1, payload=b"y"), 0.02) is False


def upload_stuck_in_fin_sent() -> Pair:
    """An upload whose every FIN-ACK is lost: the client sits in FIN_SENT."""
    network = FakeNetwork(random.Random(1))
    network.drop = lambda to, data: decode_datagram(data).type is PacketType.FIN_ACK  # type: ignore[assignment]
    pair = Pair(b"z" * 3000, Direction.UPLOAD, network, mss=1000)
    pair.start()
    while pair.client.state is not State.FIN_SENT:
        assert pair.step()
    return pair


def test_a_fin_ack_must_acknowledge_the_fin() -> None:
    pair = upload_stuck_in_fin_sent()
    client, total = pair.client, pair.client.total
    for wrong in (0, total, total + 2):
        bad = Packet(PacketType.FIN_ACK, SESSION, ack=wrong)
        assert client.receive(bad, pair.now) is False
        assert client.state is State.FIN_SENT  # not "stored" on a forged or stale word
    assert client.stats.rejected == 3
    assert client.receive(Packet(PacketType.FIN_ACK, SESSION, ack=total + 1), pair.now)
    assert client.state is State.CLOSED


def shake_hands(pair: Pair) -> None:
    """SYN at 0 s, SYN-ACK back at 10 ms; the client's handshake ACK is still to send."""
    pair.client.connect(0.0)
    pair.server.receive(packets(pair.client)[0], 0.0)
    pair.client.receive(packets(pair.server)[0], 0.01)


def test_refused_datagrams_do_not_keep_a_dead_transfer_alive() -> None:
    limits = Limits(idle_timeout_s=5.0, max_retries=1000)
    pair = Pair(b"y" * 5000, Direction.UPLOAD, FakeNetwork(random.Random(1)), mss=1000,
                limits=limits)  # fmt: skip
    client = pair.client
    shake_hands(pair)
    packets(client, 0.01)  # the handshake ACK and chunk 1; then the server goes silent
    never_sent = Packet(PacketType.ACK, SESSION, seq=4, ack=4, rwnd=10)
    now = 0.01
    while client.state is not State.FAILED and now < 20.0:
        now += 0.5
        assert client.receive(never_sent, now) is False  # someone replays junk
        deadline = client.get_timer()
        if deadline is not None and deadline <= now:
            client.handle_timer(now)
            packets(client, now)
    assert client.state is State.FAILED
    assert client.failure is not None and client.failure[0] == "IDLE"
    assert now <= 5.0 + 1.0  # it expired on time, junk or not


def test_a_sender_that_resends_chunks_but_never_fins_is_given_up() -> None:
    # A download whose server delivered every chunk, then kept resending one and never
    # sent its FIN: each duplicate proved it alive, and nothing bounded the wait.
    limits = Limits(idle_timeout_s=5.0, stall_timeout_s=30.0)
    pair = Pair(b"y" * 3000, Direction.DOWNLOAD, FakeNetwork(random.Random(1)), mss=1000,
                limits=limits)  # fmt: skip
    client, server = pair.client, pair.server
    shake_hands(pair)
    now, to_client = 0.01, packets(client, 0.01)  # the handshake ACK
    last_chunk = None
    while client.receiver is None or client.receiver.ack < client.total:
        now += 0.01
        for packet in to_client:
            server.receive(packet, now)
        for packet in packets(server, now):
            if packet.type is PacketType.DATA:
                last_chunk = packet
                client.receive(packet, now)
        to_client = packets(client, now)
    assert last_chunk is not None  # every chunk is held; the server never sends its FIN
    while client.state is not State.FAILED and now < 3600.0:
        now += 1.0
        client.receive(last_chunk, now)  # again, and again
        deadline = client.get_timer()
        if deadline is not None and deadline <= now:
            client.handle_timer(now)
        packets(client, now)
    assert client.state is State.FAILED
    assert client.failure is not None and client.failure[0] == STALLED
    assert now <= 30.0 + 2.0


def test_a_server_still_retrying_its_syn_ack_keeps_the_client_waiting() -> None:
    # Download: every handshake ACK of the client is lost, so the server keeps resending
    # its SYN-ACK (for up to ~2 minutes). Each repeat proves the server alive: the client
    # must not give up as idle meanwhile.
    pair = download_pair()
    client, server = pair.client, pair.server
    client.connect(0.0)
    server.receive(packets(client)[0], 0.0)
    syn_ack = packets(server)[0]
    assert client.receive(syn_ack, 0.01) is True
    packets(client, 0.01)  # the handshake ACK, lost
    now = 0.01
    while now < 110.0:
        now += 20.0
        client.receive(syn_ack, now)  # a resend
        deadline = client.get_timer()
        if deadline is not None and deadline <= now:
            client.handle_timer(now)
        packets(client, now)
        assert client.state is not State.FAILED, client.failure


def test_an_empty_upload_whose_handshake_ack_is_lost_still_closes() -> None:
    # No DATA can prove the client got SYN-ACK, and on a repeated SYN-ACK the client
    # repeats its FIN: the FIN itself must establish the session (found by Hypothesis).
    pair = Pair(b"", Direction.UPLOAD, FakeNetwork(random.Random(1)), mss=1000)
    client, server = pair.client, pair.server
    client.connect(0.0)
    server.receive(packets(client)[0], 0.0)
    assert client.receive(packets(server)[0], 0.01) is True
    sent = packets(client, 0.01)
    assert [p.type for p in sent] == [PacketType.ACK, PacketType.FIN]  # the ACK is lost
    assert server.state is State.SYN_RCVD
    assert server.receive(sent[1], 0.02) is True
    assert server.state is State.FIN_RCVD
    server.commit(0.02)
    [fin_ack] = packets(server, 0.02)
    assert client.receive(fin_ack, 0.03) is True
    assert client.state is State.CLOSED and server.state is State.TIME_WAIT


def syn_resend_times(path_rtt_s: float | None, resends: int = 3) -> list[float]:
    """When an unanswered SYN goes out again, each time."""
    pair = download_pair()
    pair.client.connect(0.0, path_rtt_s=path_rtt_s)
    [syn] = packets(pair.client)
    times = []
    for _ in range(resends):
        timer = pair.client.get_timer()
        assert timer is not None
        pair.client.handle_timer(timer)
        assert packets(pair.client, timer) == [syn]
        times.append(round(timer, 6))
    return times


def test_a_measured_round_trip_times_the_syn() -> None:
    # RFC 6298's first sample: RTO = R + 4·R/2 = 3R, within [RTO floor, 1 s], doubling.
    assert syn_resend_times(None) == [1.0, 3.0, 7.0]
    assert syn_resend_times(0.002) == [0.2, 0.6, 1.4]  # a near server: the 200 ms floor
    assert syn_resend_times(0.1) == [0.3, 0.9, 2.1]
    assert syn_resend_times(0.5) == [1.0, 3.0, 7.0]  # never slower than without it
    assert syn_resend_times(float("nan")) == syn_resend_times(-1.0) == [1.0, 3.0, 7.0]


def test_a_peer_that_answers_but_never_lets_data_move_is_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A downloading client that never drains (its window stays shut) yet answers every
    # window probe kept the server's session, and a room's session slot, forever.
    monkeypatch.setattr(Pair, "deliver_ready", lambda self: None)
    limits = Limits(buffer_bytes=8000, stall_timeout_s=120.0)
    pair = Pair(make_file(400_000, 1), Direction.DOWNLOAD, FakeNetwork(random.Random(1)),
                mss=1000, limits=limits)  # fmt: skip
    pair.start()
    while pair.now < 3600 and pair.step():
        pass
    assert pair.server.state is State.FAILED
    assert pair.server.failure is not None and pair.server.failure[0] == STALLED
    assert pair.now < 120 + limits.idle_timeout_s + 60  # soon after the bound, not an hour
