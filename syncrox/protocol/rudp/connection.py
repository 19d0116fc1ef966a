"""One file transfer as an explicit state machine, for both ends and both directions. Sans-IO.

Theory of operation
-------------------
The client opens every transfer (upload: it sends the data; download: the server does); the
File Control channel has already given it a ``session_id``, which every packet carries and
by which the server finds the session (never by address).

    client                                   server
    SYN  (codec, algo, mss proposals)  ->                   IDLE -> SYN_RCVD
                                       <-  SYN-ACK (codec, algo, mss, size, total, sha256,
    SYN_SENT -> ESTABLISHED                         ack = chunks already held on an upload)
    ACK seq=0 (ack = chunks already held  ->                SYN_RCVD -> ESTABLISHED
              on a download)
    ... DATA seq=1..total / ACK (cumulative ack, rwnd, sack) in the negotiated codec ...
    data sender: every chunk acked -> FIN seq=total+1           ESTABLISHED -> FIN_SENT
    data receiver: FIN, all chunks held -> FIN_RCVD; the edge verifies SHA-256 and stores
    the file, then ``commit`` -> FIN-ACK -> TIME_WAIT (re-answers a repeated FIN) -> CLOSED
    data sender: FIN-ACK -> CLOSED (the file is stored: only now is the transfer a success)

SYN, SYN-ACK and FIN are retransmitted with exponential back-off and give up after
``max_retries``; duplicates are answered idempotently with the same reply. The handshake's
ACK (``seq`` 0) is consumed here and never reaches the sender's RTT or duplicate-ACK logic
(the original's flaw 14). A DATA on the server before that ACK completes the handshake too,
if it is a chunk of this file (garbage carrying the session id completes nothing).
``TRANSITIONS`` lists every legal (state, trigger); a datagram whose trigger is not legal in
the current state, or not meant for this end's role, is dropped and counted, never obeyed.
``receive`` tells the edge whether the datagram was *accepted*: a first, valid handshake
step, a chunk of this file within the receive buffer's reach, an ACK of data in flight, a
FIN or FIN-ACK that ends the transfer. Only such a datagram may move the address the edge
replies to (NAT rebinding), so a forged or stray datagram that merely carries a known
session id cannot redirect the transfer; repeats of handshake packets are answered, but to
the address already confirmed.
Local misuse (``commit`` at the wrong time) raises ``LocalProtocolError``. Any end that
fails sends RST with a reason code, so the peer learns why instead of timing out. A session
that accepts nothing for ``idle_timeout_s`` fails with ``IDLE``; one whose data does not
move for ``stall_timeout_s`` (while there is data to move) with ``STALLED``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncrox.errors import BAD_ARGUMENT, LocalProtocolError, RemoteProtocolError
from syncrox.protocol.rudp import handshake
from syncrox.protocol.rudp.codec import BAD_DATAGRAM, Encoder
from syncrox.protocol.rudp.congestion import DEFAULT_ALGORITHM, make_controller
from syncrox.protocol.rudp.packets import (
    DEFAULT_MSS_BYTES,
    Codec,
    Packet,
    PacketType,
    chunk_count,
)
from syncrox.protocol.rudp.receiver import Receiver
from syncrox.protocol.rudp.rtt import RttEstimator
from syncrox.protocol.rudp.sender import ChunkSource, EventHook, Sender
from syncrox.protocol.rudp.states import (
    CLIENT_INPUTS,
    RECEIVER_INPUTS,
    SENDER_INPUTS,
    SERVER_INPUTS,
    TERMINAL,
    trigger_of,
)

# Re-exported: the state machine is part of this module's interface.
from syncrox.protocol.rudp.states import TRANSITIONS as TRANSITIONS
from syncrox.protocol.rudp.states import Direction as Direction
from syncrox.protocol.rudp.states import Role as Role
from syncrox.protocol.rudp.states import State as State
from syncrox.protocol.rudp.states import Trigger as Trigger

S, T = State, Trigger

# RST reason codes
TIMEOUT = "TIMEOUT"
# Every chunk was acknowledged, but no FIN-ACK came back (the receiver's TIME_WAIT ended
# before any of our FINs got through): the data arrived; whether it was stored must be
# checked another way (the client asks File Control's LIST for the digest).
UNCONFIRMED = "UNCONFIRMED"
IDLE = "IDLE"
STALLED = "STALLED"  # accepted datagrams, but no data moved for too long
BAD_HANDSHAKE = "BAD_HANDSHAKE"
ABORTED = "ABORTED"
STORE = "STORE"  # writing received chunks failed (disk full, ...)
REFUSED = "REFUSED"  # the receiving edge refused the finished file (not stored)
SUPERSEDED = "SUPERSEDED"  # a newer UPLOAD resumed this upload (sent by the service)
ACK_EVERY = 2  # in-order chunks per early ACK (as TCP's delayed ACK)
EARLY_ACKS_PER_FLUSH = 2  # early ACKs per batch; the batch ends with one more


@dataclass(frozen=True)
class Limits:
    rto_min_ms: float = 200.0
    rto_max_ms: float = 30_000.0
    handshake_rto_s: float = 1.0
    max_retries: int = 8
    # Receive buffer per session: bounds rwnd and memory. 2 MiB leaves room in a loopback
    # socket's buffer, so slow start does not overflow it on its way to the window.
    buffer_bytes: int = 2 * 1024 * 1024
    max_mss_bytes: int = 60 * 1024
    idle_timeout_s: float = 60.0
    # ESTABLISHED with datagrams accepted but no data moving (a zero window forever, a
    # duplicate chunk now and then): the idle timer never fires, this one does.
    stall_timeout_s: float = 300.0
    # TIME_WAIT: how long the data receiver keeps answering a repeated FIN, restarted by
    # each one. Twice the largest RTO, so a sender whose FIN-ACK was lost always hears again.
    linger_s: float = 60.0
    codecs: tuple[Codec, ...] = (Codec.JSON, Codec.BINARY)


@dataclass(frozen=True)
class Offer:
    """What the client proposes in its SYN."""

    codec: Codec = Codec.JSON
    algo: str = DEFAULT_ALGORITHM
    mss: int = DEFAULT_MSS_BYTES


@dataclass
class ConnectionStats:
    datagrams_in: int = 0
    dropped: int = 0  # legal datagrams that make no sense in this state or role
    rejected: int = 0  # datagrams whose content we refused (wrong chunk, ...)
    reasons: dict[str, int] = field(default_factory=dict)


class Connection:
    def __init__(
        self,
        *,
        role: Role,
        direction: Direction,
        session_id: str,
        room: str,
        filename: str,
        limits: Limits,
        now: float,
        size: int = 0,
        sha256: str = "",
        source: ChunkSource | None = None,
        offer: Offer = Offer(),
        resume_bytes: int = 0,
        resume_mss: int = 0,
        on_event: EventHook | None = None,
        expect_file: tuple[int, str] | None = None,  # a download's (size, sha256) from its ticket
    ) -> None:
        self.role, self.direction, self.limits = role, direction, limits
        self.session_id, self.room, self.filename = session_id, room, filename
        self.size, self.sha256, self.source, self.offer = size, sha256, source, offer
        self.resume_bytes, self.resume_mss, self.on_event = resume_bytes, resume_mss, on_event
        self.expect_file = expect_file
        self.state = State.IDLE
        self.stats = ConnectionStats()
        self.failure: tuple[str, str] | None = None  # (code, text) once FAILED
        self.codec, self.algo, self.mss = Codec.JSON, offer.algo, offer.mss
        self.total = 0
        self.resume_chunks = 0
        self.sender: Sender | None = None
        self.receiver: Receiver | None = None
        self._json = Encoder(Codec.JSON, session_id, room, filename)
        self._encoder = self._json
        self._outbox: list[bytes] = []
        self._reply: bytes = b""  # the handshake reply repeated for duplicates
        self._retries = 0
        self._deadline: float | None = None  # handshake / FIN / linger timer
        self._last_heard = now
        self._progress_mark: tuple[State, int] = (self.state, 0)
        self._progress_at = now
        self._syn_sent_at: float | None = None
        self._syn_resent = False
        self._early_acks = 0

    # ------------------------------------------------------------------ roles

    @property
    def sends_data(self) -> bool:
        return (self.role is Role.CLIENT) == (self.direction is Direction.UPLOAD)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.state is State.CLOSED

    def _move(self, trigger: Trigger) -> None:
        new = TRANSITIONS.get((self.state, trigger))
        if new is None:
            raise LocalProtocolError(
                BAD_ARGUMENT, f"{trigger.value} is not legal in state {self.state.value}"
            )
        self.state = new

    def _drop(self, reason: str) -> None:
        self.stats.dropped += 1
        self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1

    # ------------------------------------------------------------------ input

    def connect(self, now: float, *, path_rtt_s: float | None = None) -> None:
        """Send the SYN. ``path_rtt_s``: a round trip already measured to the same server
        (the client times the File Control request that got it this ticket). It is a first
        RTT sample of RFC 6298 §2.1, so the SYN is resent after SRTT + 4·RTTVAR = 3·R (at
        least the RTO floor, never more than the 1 s used without one): a lost SYN or
        SYN-ACK costs 200 ms instead of a second on a near server. (Linux likewise starts
        from the RTT it cached for the destination.)"""
        self._move(T.CONNECT)
        self._reply = self._json.packet(
            Packet(
                PacketType.SYN, self.session_id, room=self.room, filename=self.filename,
                codec=self.offer.codec.value, algo=self.offer.algo, mss=self.offer.mss,
                rwnd=self._buffer_chunks(self.offer.mss), size=self.size, sha256=self.sha256,
            )
        )  # fmt: skip
        self._send_control(now, rto_s=self._first_rto_s(path_rtt_s))
        self._syn_sent_at = now

    def _first_rto_s(self, path_rtt_s: float | None) -> float:
        unmeasured = self.limits.handshake_rto_s
        if path_rtt_s is None or not 0.0 <= path_rtt_s < unmeasured:
            return unmeasured
        return min(max(3.0 * path_rtt_s, self.limits.rto_min_ms / 1000.0), unmeasured)

    def receive(self, packet: Packet, now: float) -> bool:
        """Feed one decoded datagram of this session. Returns ``True`` if it was accepted as
        valid for the current state (see the module docstring): only then may the edge
        reply to the address it came from."""
        self.stats.datagrams_in += 1
        trigger = trigger_of(packet)
        if not self._accepts(trigger) or (self.state, trigger) not in TRANSITIONS:
            self._drop(f"{trigger.value} in {self.state.value}")
            return False
        try:
            accepted = self._dispatch(trigger, packet, now)
        except RemoteProtocolError as exc:
            self.stats.rejected += 1
            self.stats.reasons[exc.code] = self.stats.reasons.get(exc.code, 0) + 1
            return False
        if accepted:
            # Only what the core accepted proves the peer alive: a stream of refused or
            # useless datagrams (anyone who knows the session id can send them) must not
            # keep a dead transfer from expiring.
            self._last_heard = now
            self._note_progress(now)
        return accepted

    def _note_progress(self, now: float) -> None:
        """Data moved (the cumulative point advanced) or the state changed: the stall
        timer starts again."""
        if self.sender is not None:
            mark = (self.state, self.sender.una)
        else:
            mark = (self.state, self.receiver.ack if self.receiver is not None else 0)
        if mark != self._progress_mark:
            self._progress_mark, self._progress_at = mark, now

    def _accepts(self, trigger: Trigger) -> bool:
        if trigger in SENDER_INPUTS and not self.sends_data:
            return False
        if trigger in RECEIVER_INPUTS and self.sends_data:
            return False
        if trigger in CLIENT_INPUTS and self.role is not Role.CLIENT:
            return False
        return not (trigger in SERVER_INPUTS and self.role is not Role.SERVER)

    def _dispatch(self, trigger: Trigger, packet: Packet, now: float) -> bool:
        match trigger:
            case T.SYN:
                return self._on_syn(packet, now)
            case T.SYN_ACK:
                return self._on_syn_ack(packet, now)
            case T.HANDSHAKE_ACK:
                return self._on_handshake_ack(packet, now)
            case T.DATA:
                return self._on_data(packet, now)
            case T.ACK:
                return self._on_ack(packet, now)
            case T.FIN:
                return self._on_fin(packet, now)
            case T.FIN_ACK:
                if packet.ack != self.total + 1:
                    raise RemoteProtocolError(
                        BAD_DATAGRAM, f"FIN-ACK acknowledges {packet.ack}, not {self.total + 1}"
                    )
                self._move(T.FIN_ACK)
                self._deadline = None
                return True
            case _:  # RST: nothing is sent after it, so there is no address to confirm
                self._fail(packet.error or ABORTED, "the peer reset the transfer", send=False)
                return False

    # ------------------------------------------------------------------ handshake

    def _on_syn(self, packet: Packet, now: float) -> bool:
        if self.state is not State.IDLE:
            self._outbox.append(self._reply)  # a duplicate SYN: the same answer again
            if self.state is State.SYN_RCVD:
                self._last_heard = now  # the client is alive, still waiting for SYN-ACK
            return False
        if (packet.room, packet.filename) != (self.room, self.filename):
            self._fail(BAD_HANDSHAKE, "SYN names another room or file", now=now)
            return False
        if self.direction is Direction.UPLOAD and (packet.size, packet.sha256) != (
            self.size,
            self.sha256,
        ):
            self._fail(BAD_HANDSHAKE, "SYN announces another size or digest", now=now)
            return False
        self._negotiate(packet)
        self._move(T.SYN)
        held = 0
        if self.direction is Direction.UPLOAD:
            held = self._resume_point()
            self.resume_chunks = held
            self.receiver = self._new_receiver(held)
        self._reply = self._json.packet(
            Packet(
                PacketType.SYN_ACK, self.session_id, ack=held, room=self.room,
                filename=self.filename, codec=self.codec.value, algo=self.algo, mss=self.mss,
                size=self.size, total=self.total, sha256=self.sha256,
                rwnd=self.receiver.rwnd if self.receiver else 0,
            )
        )  # fmt: skip
        self._send_control(now)
        return True

    def _negotiate(self, syn: Packet) -> None:
        choice = handshake.choose(
            syn, codecs=self.limits.codecs, max_mss_bytes=self.limits.max_mss_bytes,
            filename=self.filename, size=self.size, resume_mss=self.resume_mss,
            resume_bytes=self.resume_bytes,
        )  # fmt: skip
        self.codec, self.algo, self.mss = choice.codec, choice.algo, choice.mss
        self.resume_bytes = choice.resume_bytes
        self.total = chunk_count(self.size, self.mss)
        self._peer_rwnd = syn.rwnd

    def _resume_point(self) -> int:
        return handshake.resume_point(self.resume_bytes, size=self.size, mss=self.mss)

    def _on_syn_ack(self, packet: Packet, now: float) -> bool:
        if self.state is not State.SYN_SENT:
            self._outbox.append(self._reply)  # our handshake ACK was lost: repeat it
            self._last_heard = now  # the server is alive, still retrying its SYN-ACK
            return False
        problem = self._check_syn_ack(packet)
        if problem:
            self._fail(BAD_HANDSHAKE, problem, now=now)
            return False
        self.codec, self.algo, self.mss = Codec(packet.codec), packet.algo, packet.mss
        self.size, self.sha256, self.total = packet.size, packet.sha256, packet.total
        self._encoder = Encoder(self.codec, self.session_id, self.room, self.filename)
        self._move(T.SYN_ACK)
        syn_retries, self._deadline, self._retries = self._retries, None, 0
        held = 0
        if self.direction is Direction.UPLOAD:
            self.resume_chunks = packet.ack
            self._start_sender(packet.ack, packet.rwnd, now)
            self._syn_resent = syn_retries > 0
            self._sample_syn(now)
        else:
            held = self._resume_point()
            self.resume_chunks = held
            self.receiver = self._new_receiver(held)
        self._reply = self._json.packet(
            Packet(PacketType.ACK, self.session_id, seq=0, ack=held,
                   rwnd=self.receiver.rwnd if self.receiver else 0)
        )  # fmt: skip
        self._outbox.append(self._reply)
        return True

    def _sample_syn(self, now: float) -> None:
        """An uploading client's first RTT sample: SYN to SYN-ACK, if the SYN went out once
        (Karn; RFC 6298 §2). It lets tail-loss probes work from the first chunk. (The
        handshake's ACK, by contrast, never feeds the RTT: flaw 14.)"""
        if self.sender is not None and self._syn_sent_at is not None and not self._syn_resent:
            self.sender.rtt.on_sample((now - self._syn_sent_at) * 1000.0)

    def _check_syn_ack(self, packet: Packet) -> str:
        return handshake.check_syn_ack(
            packet, offer_mss=self.offer.mss, upload=self.direction is Direction.UPLOAD,
            size=self.size, sha256=self.sha256, expected=self.expect_file,
        )  # fmt: skip

    def _on_handshake_ack(self, packet: Packet, now: float) -> bool:
        if self.state is not State.SYN_RCVD:
            return False  # a repeated handshake ACK: already established, nothing to do
        if packet.ack > self.total:
            self._fail(BAD_HANDSHAKE, "resume point beyond the file", now=now)
            return False
        self._establish()
        if self.direction is Direction.DOWNLOAD:
            self.resume_chunks = packet.ack
            self._start_sender(packet.ack, packet.rwnd, now)
        return True

    def _establish(self) -> None:
        self._move(T.HANDSHAKE_ACK if self.state is State.SYN_RCVD else T.DATA)
        self._deadline, self._retries = None, 0
        self._encoder = Encoder(self.codec, self.session_id, self.room, self.filename)

    def _start_sender(self, held: int, peer_rwnd: int, now: float) -> None:
        if self.source is None:
            raise LocalProtocolError(BAD_ARGUMENT, "a sending end needs a chunk source")
        self.sender = Sender(
            total=self.total, size=self.size, mss=self.mss, source=self.source,
            cc=make_controller(self.algo),
            rtt=RttEstimator(rto_min_ms=self.limits.rto_min_ms,
                             rto_max_ms=self.limits.rto_max_ms),
            peer_rwnd=peer_rwnd, max_retries=self.limits.max_retries, first_seq=held + 1,
            emit=self.on_event,
        )  # fmt: skip
        self.sender.start(now)

    def _new_receiver(self, held: int) -> Receiver:
        return Receiver(
            total=self.total, size=self.size, mss=self.mss,
            buffer_chunks=self._buffer_chunks(self.mss), start_ack=held,
        )  # fmt: skip

    def _buffer_chunks(self, mss: int) -> int:
        return max(self.limits.buffer_bytes // max(mss, 1), 4)

    # ------------------------------------------------------------------ data phase

    def _on_data(self, packet: Packet, now: float) -> bool:
        receiver = self.receiver
        assert receiver is not None
        # A sender never goes beyond what our buffer could take (its window is at most the
        # buffer, counted from an ACK we sent), so a chunk past that is nobody's real data.
        in_reach = packet.seq <= receiver.ack + receiver.buffer_chunks
        if self.state is State.SYN_RCVD:
            receiver.check_chunk(packet.seq, packet.payload)  # before it completes anything
            self._establish()  # the handshake ACK was lost; DATA proves the client got SYN-ACK
        urgent = receiver.on_data(packet.seq, packet.payload)
        early = receiver.unacked >= ACK_EVERY and self._early_acks < EARLY_ACKS_PER_FLUSH
        if urgent or early:
            # Out of order, a duplicate, a hole filled, outside the window, or quick-ACK
            # mode after one of the first three: each gets its own ACK, so the sender
            # counts every duplicate. Other in-order chunks are acknowledged once per
            # batch, plus a few early ACKs, so one lost ACK cannot stall a whole window.
            self._early_acks += not urgent
            self._outbox.append(self._encoder.ack(*receiver.make_ack()))
        return in_reach

    def _on_ack(self, packet: Packet, now: float) -> bool:
        if self.sender is None or self.state is not State.ESTABLISHED:
            return False  # late ACKs after every chunk was acknowledged
        return self.sender.on_ack(packet.ack, packet.rwnd, packet.sack, packet.seq, now)

    def _on_fin(self, packet: Packet, now: float) -> bool:
        assert self.receiver is not None
        closing = packet.seq == self.total + 1
        if self.state is State.TIME_WAIT:
            self._outbox.append(self._reply)  # our FIN-ACK was lost: repeat, linger again
            self._deadline = now + self.limits.linger_s
            return closing
        if self.state is State.FIN_RCVD:
            return closing  # the edge is still verifying and storing; FIN-ACK follows
        if not self.receiver.complete or not closing:
            raise RemoteProtocolError(BAD_DATAGRAM, "FIN before every chunk arrived")
        if self.state is State.SYN_RCVD:
            # An empty upload has no DATA to prove the client got SYN-ACK if the handshake
            # ACK was lost (and the client repeats its FIN, not that ACK): the FIN does.
            self._establish()
        self.receiver.ack_due = self.receiver.echo > 0
        self._move(T.FIN)
        return True

    def commit(self, now: float) -> None:
        """The edge verified and stored the file: acknowledge the FIN."""
        self._move(T.COMMITTED)
        self._reply = self._encoder.packet(
            Packet(PacketType.FIN_ACK, self.session_id, ack=self.total + 1)
        )
        self._outbox.append(self._reply)
        self._deadline = now + self.limits.linger_s

    def abort(self, code: str, text: str, now: float) -> None:
        """Give up locally (bad digest, disk full, shutdown); tells the peer with RST."""
        if not self.terminal:
            self._fail(code, text, now=now)

    def take_ready(self) -> list[bytes]:
        return self.receiver.take_ready() if self.receiver else []

    # ------------------------------------------------------------------ output and time

    def datagrams_to_send(self, now: float) -> list[bytes]:
        out, self._outbox = self._outbox, []
        self._early_acks = 0
        receiver = self.receiver
        if receiver is not None and receiver.ack_due:
            out.append(self._encoder.ack(*receiver.make_ack()))
        sender = self.sender
        if sender is not None and self.state is State.ESTABLISHED:
            data = self._encoder.data
            out.extend(data(seq, payload) for seq, payload in sender.poll(now))
            if sender.failed:
                self._fail(TIMEOUT, "no acknowledgement after repeated retransmissions", now=now)
                out.extend(self._outbox)
                self._outbox = []
            elif sender.done:
                self._move(T.ALL_ACKED)
                self._reply = self._encoder.packet(
                    Packet(PacketType.FIN, self.session_id, seq=self.total + 1)
                )
                self._send_control(now, rto_s=sender.rtt.rto_s)
                out.extend(self._outbox)
                self._outbox = []
        return out

    def get_timer(self) -> float | None:
        if self.terminal:
            return None
        deadlines = [] if self.state is State.TIME_WAIT else [self._idle_deadline]
        if self._may_stall:
            deadlines.append(self._stall_deadline)
        if self._deadline is not None:
            deadlines.append(self._deadline)
        if self.sender is not None and self.state is State.ESTABLISHED:
            sender_timer = self.sender.get_timer()
            if sender_timer is not None:
                deadlines.append(sender_timer)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self.terminal:
            return
        if self.state is not State.TIME_WAIT and now >= self._idle_deadline:
            self._fail(IDLE, f"nothing heard for {self.limits.idle_timeout_s:g} s", now=now)
            return
        if self._may_stall and now >= self._stall_deadline:
            self._fail(STALLED, f"no data moved for {self.limits.stall_timeout_s:g} s", now=now)
            return
        if self.sender is not None and self.state is State.ESTABLISHED:
            self.sender.on_timer(now)
            if self.sender.failed:
                self._fail(TIMEOUT, "no acknowledgement after repeated retransmissions", now=now)
            return
        if self._deadline is None or now < self._deadline:
            return
        if self.state is State.TIME_WAIT:
            self._move(T.TIMER)
            self._deadline = None
        elif self.state in (State.SYN_SENT, State.SYN_RCVD, State.FIN_SENT):
            self._retransmit_control(now)

    @property
    def _may_stall(self) -> bool:
        """Data or the FIN is still to come. A receiver that holds every chunk waits for the
        FIN under the same bound: a sender that keeps resending chunks (each one proves it
        alive) but never sends the FIN would otherwise hold the session for ever."""
        return self.state is State.ESTABLISHED

    @property
    def _stall_deadline(self) -> float:
        return self._progress_at + self.limits.stall_timeout_s

    @property
    def _idle_deadline(self) -> float:
        # TIME_WAIT has its own bound (the linger timer), so it is exempt.
        return self._last_heard + self.limits.idle_timeout_s

    def _send_control(self, now: float, rto_s: float | None = None) -> None:
        self._outbox.append(self._reply)
        self._retries = 0
        self._control_rto_s = rto_s or self.limits.handshake_rto_s
        self._deadline = now + self._control_rto_s

    def _retransmit_control(self, now: float) -> None:
        self._retries += 1
        if self._retries > self.limits.max_retries:
            code = UNCONFIRMED if self.state is State.FIN_SENT else TIMEOUT
            self._fail(code, f"no answer in {self.state.value}", now=now)
            return
        self._move(T.TIMER)
        self._outbox.append(self._reply)
        backoff_s = self._control_rto_s * 2**self._retries
        self._deadline = now + min(backoff_s, self.limits.rto_max_ms / 1000.0)

    def _fail(self, code: str, text: str, *, now: float = 0.0, send: bool = True) -> None:
        self._move(T.RST if not send else T.GIVE_UP)
        self.failure = (code, text)
        self._deadline = None
        if send:
            self._outbox.append(
                self._json.packet(Packet(PacketType.RST, self.session_id, error=code))
            )
