"""The analytics page's call: the congestion events (``METRICS``) of the transfers it picked
from ``backend.transfers.room_transfers``, in one short ``trio.run`` on File Control,
admitted with the session's membership token. What the page draws is computed by
``syncrox.client.analytics`` (pure), re-exported here as ``series`` so that pages and
``charts`` need no other door.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend import call
from backend.errors import BackendError
from backend.transfers import admitted
from syncrox.client import analytics as series
from syncrox.client.analytics import Trace
from syncrox.client.endpoints import Endpoints
from syncrox.errors import RemoteProtocolError
from syncrox.protocol.files import TransferEntry
from syncrox.protocol.rudp.events import EventKind

__all__ = [
    "EventKind",
    "Metrics",
    "Run",
    "Trace",
    "TransferEntry",
    "metrics",
    "series",
]

# The server may hold a METRICS export up to 30 s for its turn before answering BUSY.
METRICS_TIMEOUT_S = 40.0


@dataclass(frozen=True)
class Metrics:
    """A transfer's exports as the server sent them (for the download buttons), and its
    events parsed from the CSV (for the charts)."""

    body: bytes  # CSV
    qlog: bytes
    trace: Trace

    @property
    def size(self) -> int:
        return len(self.body) + len(self.qlog)


@dataclass(frozen=True)
class Run:
    """One selected transfer: how the page names it, and its events."""

    entry: TransferEntry
    label: str
    metrics: Metrics

    @property
    def trace(self) -> Trace:
        return self.metrics.trace

    @property
    def algo(self) -> str:
        return self.entry.algo


def metrics(token: str, transfer_ids: Sequence[str]) -> dict[str, Metrics]:
    """Each transfer's CSV (parsed) and qlog exports, over one connection. Both are fetched
    at once, not when a download button is clicked: Streamlit deletes a file made by a
    deferred ``download_button(data=callable)`` at the second script run after it (a
    ``run_every`` fragment, such as the sidebar's, runs every 0.5 s), and a browser slower
    than that to fetch it saw its download cancelled."""

    async def op(where: Endpoints) -> dict[str, Metrics]:
        found: dict[str, Metrics] = {}
        async with admitted(where, token) as files:
            for transfer_id in transfer_ids:
                body = await files.metrics(transfer_id, "csv")
                qlog = await files.metrics(transfer_id, "qlog")
                try:
                    found[transfer_id] = Metrics(body, qlog, series.parse_metrics_csv(body))
                except RemoteProtocolError as exc:
                    raise BackendError(
                        f"the server's metrics are unreadable: {exc.message}"
                    ) from exc
        return found

    return call(op, timeout_s=METRICS_TIMEOUT_S)
