"""The transfer state machine as an explicit table: roles, directions, states, triggers
and every legal (state, trigger) -> state move, for both ends and both directions. Pure
data; ``Connection`` (``connection.py``) moves along it and refuses anything not in it."""

from __future__ import annotations

import enum

from syncrox.protocol.rudp.packets import Packet, PacketType


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class Direction(enum.Enum):
    UPLOAD = "upload"  # the client sends the file
    DOWNLOAD = "download"  # the server sends the file


class State(enum.Enum):
    IDLE = "IDLE"
    SYN_SENT = "SYN_SENT"
    SYN_RCVD = "SYN_RCVD"
    ESTABLISHED = "ESTABLISHED"
    FIN_SENT = "FIN_SENT"
    FIN_RCVD = "FIN_RCVD"
    TIME_WAIT = "TIME_WAIT"
    CLOSED = "CLOSED"
    FAILED = "FAILED"


class Trigger(enum.Enum):
    CONNECT = "connect"
    SYN = "SYN"
    SYN_ACK = "SYN-ACK"
    HANDSHAKE_ACK = "ACK seq=0"
    DATA = "DATA"
    ACK = "ACK"
    FIN = "FIN"
    FIN_ACK = "FIN-ACK"
    RST = "RST"
    ALL_ACKED = "all acked"
    COMMITTED = "committed"
    TIMER = "timer"
    GIVE_UP = "give up"


S, T = State, Trigger
_LIVE = (S.IDLE, S.SYN_SENT, S.SYN_RCVD, S.ESTABLISHED, S.FIN_SENT, S.FIN_RCVD, S.TIME_WAIT)
TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (S.IDLE, T.CONNECT): S.SYN_SENT,
    (S.IDLE, T.SYN): S.SYN_RCVD,
    (S.SYN_SENT, T.SYN_ACK): S.ESTABLISHED,
    (S.SYN_SENT, T.TIMER): S.SYN_SENT,
    (S.SYN_RCVD, T.SYN): S.SYN_RCVD,
    (S.SYN_RCVD, T.TIMER): S.SYN_RCVD,
    (S.SYN_RCVD, T.HANDSHAKE_ACK): S.ESTABLISHED,
    (S.SYN_RCVD, T.DATA): S.ESTABLISHED,
    (S.SYN_RCVD, T.FIN): S.FIN_RCVD,  # an empty upload whose handshake ACK was lost
    (S.ESTABLISHED, T.SYN): S.ESTABLISHED,
    (S.ESTABLISHED, T.SYN_ACK): S.ESTABLISHED,
    (S.ESTABLISHED, T.HANDSHAKE_ACK): S.ESTABLISHED,
    (S.ESTABLISHED, T.DATA): S.ESTABLISHED,
    (S.ESTABLISHED, T.ACK): S.ESTABLISHED,
    (S.ESTABLISHED, T.TIMER): S.ESTABLISHED,
    (S.ESTABLISHED, T.ALL_ACKED): S.FIN_SENT,
    (S.ESTABLISHED, T.FIN): S.FIN_RCVD,
    (S.FIN_SENT, T.SYN_ACK): S.FIN_SENT,
    (S.FIN_SENT, T.HANDSHAKE_ACK): S.FIN_SENT,
    (S.FIN_SENT, T.ACK): S.FIN_SENT,
    (S.FIN_SENT, T.TIMER): S.FIN_SENT,
    (S.FIN_SENT, T.FIN_ACK): S.CLOSED,
    (S.FIN_RCVD, T.SYN_ACK): S.FIN_RCVD,
    (S.FIN_RCVD, T.DATA): S.FIN_RCVD,
    (S.FIN_RCVD, T.FIN): S.FIN_RCVD,
    (S.FIN_RCVD, T.COMMITTED): S.TIME_WAIT,
    (S.TIME_WAIT, T.SYN_ACK): S.TIME_WAIT,
    (S.TIME_WAIT, T.DATA): S.TIME_WAIT,
    (S.TIME_WAIT, T.FIN): S.TIME_WAIT,
    (S.TIME_WAIT, T.TIMER): S.CLOSED,
    **{(state, T.RST): S.FAILED for state in _LIVE},
    **{(state, T.GIVE_UP): S.FAILED for state in _LIVE},
}
TERMINAL = frozenset({S.CLOSED, S.FAILED})
# Which end may receive which packet trigger at all, given who sends the data.
SENDER_INPUTS = frozenset({T.ACK, T.FIN_ACK})
RECEIVER_INPUTS = frozenset({T.DATA, T.FIN})
CLIENT_INPUTS = frozenset({T.SYN_ACK})
SERVER_INPUTS = frozenset({T.SYN, T.HANDSHAKE_ACK})


def trigger_of(packet: Packet) -> Trigger:
    match packet.type:
        case PacketType.ACK:
            return T.HANDSHAKE_ACK if packet.seq == 0 else T.ACK
        case PacketType.SYN_ACK:
            return T.SYN_ACK
        case PacketType.FIN_ACK:
            return T.FIN_ACK
        case kind:
            return Trigger[kind.name]
