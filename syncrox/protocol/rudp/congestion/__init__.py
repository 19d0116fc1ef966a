"""Congestion control: a small base class and one module per algorithm."""

from __future__ import annotations

from syncrox.errors import BAD_ARGUMENT, LocalProtocolError
from syncrox.protocol.rudp.congestion.base import CongestionControl, Phase
from syncrox.protocol.rudp.congestion.cubic import Cubic
from syncrox.protocol.rudp.congestion.newreno import NewReno
from syncrox.protocol.rudp.congestion.reno import Reno
from syncrox.protocol.rudp.congestion.tahoe import Tahoe

ALGORITHMS: dict[str, type[CongestionControl]] = {
    cls.name: cls for cls in (Tahoe, Reno, NewReno, Cubic)
}
DEFAULT_ALGORITHM = "reno"


def make_controller(name: str) -> CongestionControl:
    cls = ALGORITHMS.get(name)
    if cls is None:
        raise LocalProtocolError(BAD_ARGUMENT, f"unknown algorithm {name!r}")
    return cls()


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "CongestionControl", "Phase", "make_controller"]
