"""Congestion Control Analytics: pick 1-4 of the room's transfers; the seed's three charts
(RTT vs Chunk Sequence, CWND vs Event Sequence, Window Size vs Transmission Round), each on
the transfer's own axes; statistics against the Mathis bound; the recent events; CSV and
qlog exports; and what a teacher explains with them.

Events are the sending side's (the server's for downloads, the uploading client's report
for uploads) and are drawn the same way. File names are peers' text: they reach the page
only as chart titles (drawn as text by Vega), table cells and widget labels, never markdown.
The File Transfer page links here by setting ``analytics_preselect`` to transfer ids.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import streamlit as st

import backend
import charts
import state
from backend import analytics, transfers
from backend.analytics import EventKind, Run, TransferEntry, series
from formats import size_text
from plain import plain

state.require_room()

PICK_KEY = "analytics_pick"
PRESELECT_KEY = "analytics_preselect"  # set by File Transfer before st.switch_page
CACHE_KEY = "analytics_traces"
MAX_PICKS = 4
MAX_CACHED = 8  # finished traces kept per browser session (a finished trace never changes)
MAX_CACHED_BYTES = 48 << 20  # and their exports, at most this much in all
RECENT_EVENTS = 30
TITLES = ("RTT vs Chunk Sequence", "CWND vs Event Sequence", "Window Size vs Transmission Round")
ENDED = frozenset({EventKind.COMPLETE, EventKind.FAILED})


def when(unix: float, *, precise: bool = False) -> str:
    moment = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return moment.strftime("%H:%M:%S.%f")[:-3] if precise else moment.strftime("%m-%d %H:%M UTC")


def label(entry: TransferEntry) -> str:
    status = "" if entry.status in ("stored", "delivered") else f" · {entry.status}"
    return (
        f"{entry.name} · {entry.direction} · {charts.algo_name(entry.algo)} · "
        f"{entry.codec.upper()} · {size_text(entry.size)} · {when(entry.started_unix)}"
        f" · {entry.transfer_id[:6]}{status}"
    )


def short_label(entry: TransferEntry) -> str:
    algo = charts.algo_name(entry.algo)
    return f"{algo} · {entry.direction} {entry.name} · {entry.transfer_id[:6]}"


def pick(entries: Sequence[TransferEntry]) -> list[str]:
    ids = [entry.transfer_id for entry in entries]
    preselect = st.session_state.pop(PRESELECT_KEY, None)
    if isinstance(preselect, list):
        st.session_state[PICK_KEY] = [i for i in preselect if i in ids][:MAX_PICKS]
    elif PICK_KEY not in st.session_state:
        st.session_state[PICK_KEY] = ids[:1]  # the newest
    else:  # a transfer may have left the server's list (it lists the newest 50)
        st.session_state[PICK_KEY] = [i for i in st.session_state[PICK_KEY] if i in ids]
    names = {entry.transfer_id: label(entry) for entry in entries}
    chosen: list[str] = st.multiselect(
        "Transfers to compare (1-4)", ids, format_func=names.__getitem__, key=PICK_KEY,
        max_selections=MAX_PICKS, placeholder="Pick up to four transfers",
        help="File · direction · algorithm · codec · size · when (UTC) · transfer id",
    )  # fmt: skip
    return chosen


def load_runs(entries: Sequence[TransferEntry], chosen: Sequence[str]) -> list[Run]:
    """The chosen transfers' events: finished ones from this session's cache, the others
    (in progress, or an upload whose client has not reported yet) from the server."""
    cache: dict[str, analytics.Metrics] = st.session_state.setdefault(CACHE_KEY, {})
    missing = [i for i in chosen if i not in cache]
    fetched = analytics.metrics(st.session_state.token, missing) if missing else {}
    chosen_metrics = {i: cache.get(i) or fetched[i] for i in chosen}
    for transfer_id, found in fetched.items():
        if found.trace.rows and found.trace.rows[-1].kind in ENDED:
            cache[transfer_id] = found
    while len(cache) > MAX_CACHED or sum(m.size for m in cache.values()) > MAX_CACHED_BYTES:
        cache.pop(next(iter(cache)))  # the oldest entry
    by_id = {entry.transfer_id: entry for entry in entries}
    return [Run(by_id[i], short_label(by_id[i]), chosen_metrics[i]) for i in chosen]


def stats_table(runs: Sequence[Run]) -> None:
    rows = [stats_row(run, series.stats(run.trace)) for run in runs]
    st.table(rows, hide_index=True)
    st.caption(
        "Goodput: bytes acknowledged over the time from the first event to the last. "
        "p: loss events (fast retransmits + timeouts) per chunk acknowledged. Mathis bound: "
        f"chunk size x {series.MATHIS_C:.2f}/√p per mean RTT (periodic losses; under random "
        "loss Reno's own rules earn about 1/√p). Mean window: cwnd at the start of each "
        "round. A trace records each congestion reaction, not each resent chunk: the exact "
        "retransmission count is in the File Transfer result."
    )


def stats_row(run: Run, got: series.Stats) -> dict[str, Any]:
    def num(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    ratio = got.goodput_x_mathis
    bound = got.mathis_goodput_bytes_per_s
    return {
        "Transfer": run.label,
        "Goodput (MB/s)": num(got.goodput_bytes_per_s / 1e6, 3),
        "Mathis bound (MB/s)": num(bound / 1e6 if bound else None, 3),
        "x Mathis": num(ratio),
        "p": num(got.loss_rate, 4),
        "Mean window": num(got.mean_window),
        f"Mathis window {series.MATHIS_C:.2f}/√p": num(got.mathis_window),
        "Rounds": got.rounds,
        "Fast retransmits": got.fast_retransmits,
        "Timeouts": got.timeouts,
        "Max cwnd": num(got.max_cwnd),
        "Final cwnd": num(got.final_cwnd),
        "Final SRTT (ms)": num(got.final_srtt_ms, 3),
    }


def chart_grid(runs: Sequence[Run], title: str, draw: Any) -> None:
    st.subheader(title)
    columns = st.columns(min(len(runs), 2))
    for n, run in enumerate(runs):
        with columns[n % len(columns)]:
            key = f"chart_{title}_{run.entry.transfer_id}"
            st.altair_chart(draw(run), key=key, width="stretch", alt=f"{title}: {run.label}")


def draw_charts(runs: Sequence[Run]) -> None:
    rto = st.toggle("Show the RTO on the RTT chart", key="analytics_show_rto",
                    help="At least 200 ms: on a fast path it dwarfs the RTT samples")  # fmt: skip
    chart_grid(runs, TITLES[0], lambda run: charts.rtt_chart(run, show_rto=rto))
    st.caption("Points: RTT samples; line: SRTT; rules: fast retransmits and timeouts.")
    chart_grid(runs, TITLES[1], charts.cwnd_chart)
    st.caption(
        "Step line: cwnd after each event; dashed: ssthresh (drawn once set); "
        "markers: event kinds; shaded: fast recovery."
    )
    st.subheader(TITLES[2])
    st.altair_chart(charts.rounds_chart(runs), key="chart_rounds", width="stretch", alt=TITLES[2])
    st.caption(
        "A round ends when the window outstanding at its start is acknowledged, or at a loss "
        "reaction (by one SRTT of time where the trace has no ACKs left). Dotted: the Mathis "
        "window for the transfer's loss-event rate; dash-dotted: its measured mean."
    )


def recent_events(runs: Sequence[Run]) -> None:
    st.subheader("Recent events")
    rows = [
        (row.ts, index, run, row)
        for run in runs
        for index, row in enumerate(run.trace.rows, start=1)
    ]
    rows.sort(key=lambda item: (item[0], item[1]))
    table = [
        {"Time (UTC)": when(ts, precise=True), "Transfer": run.label, "#": index,
         "Event": row.kind.value, "Seq": row.seq, "Bytes": row.bytes, "RTT (ms)": row.rtt_ms,
         "SRTT (ms)": row.srtt_ms, "RTO (ms)": row.rto_ms, "cwnd": row.cwnd,
         "ssthresh": series.ssthresh_of(row.ssthresh)}
        for ts, index, run, row in rows[-RECENT_EVENTS:]
    ]  # fmt: skip
    st.dataframe(table, hide_index=True, key="analytics_events")


def downloads(runs: Sequence[Run]) -> None:
    """The exports as fetched with the events (see ``backend.analytics.metrics``)."""
    st.subheader("Exports")
    st.caption("CSV: the seed's columns, one line per event. qlog 0.3 (JSON): opens in qvis.")
    for run in runs:
        entry = run.entry
        stem = f"transfer-{entry.transfer_id[:12]}-{entry.algo}"
        left, middle, right = st.columns([5, 1, 1])
        left.text(run.label)
        middle.download_button(
            "CSV", run.metrics.body, file_name=f"{stem}.csv", mime="text/csv",
            on_click="ignore", key=f"export_csv_{entry.transfer_id}", icon=":material/download:",
        )  # fmt: skip
        right.download_button(
            "qlog", run.metrics.qlog,
            file_name=f"{stem}.qlog", mime="application/json", on_click="ignore",
            key=f"export_qlog_{entry.transfer_id}", icon=":material/download:",
        )  # fmt: skip


def explanations() -> None:
    with st.expander("What the charts show", expanded=False):
        st.markdown(EXPLANATIONS)


EXPLANATIONS = """
**Slow start.** A connection starts with a window of one chunk and adds one per chunk
acknowledged, so the window doubles every round trip (1, 2, 4, 8, ... on the rounds chart)
until it reaches ssthresh or a loss.

**AIMD: the sawtooth.** Past ssthresh (congestion avoidance) the window grows by one chunk
per round (additive increase); a loss halves it (multiplicative decrease). The window then
climbs slowly and drops sharply: a sawtooth around the capacity of the path. The Mathis
formula is its average: about 1.22/√p chunks per round trip at loss rate p.

**Tahoe vs Reno.** Both halve ssthresh on a loss. Tahoe drops the window to one chunk and
slow-starts again; Reno, after three duplicate ACKs, *fast-recovers*: the window becomes
ssthresh + 3, grows by one for each further duplicate (the chunks that left the network),
and returns to ssthresh when new data is acknowledged. On the CWND chart Tahoe falls to 1
at each triangle; Reno falls to about half. A timeout sends both back to one chunk.

**NewReno** stays in fast recovery until every chunk sent before the loss is acknowledged,
resending the next hole at each partial ACK: several losses in one window cost one halving
instead of several.

**CUBIC** (Linux's default) cuts the window to 0.7 of itself and regrows it along a cubic
curve of the time since the loss: fast far from the old maximum, flat near it, so it
probes the path without overshooting; it does not depend on the RTT as Reno does.

**Reading a trace.** RTT samples come only from chunks sent once (Karn); the RTO is at
least 200 ms. Uploads show the client's events (it sends), downloads the server's.
"""


def main() -> None:
    st.title("Congestion Control Analytics")
    try:
        entries = transfers.room_transfers(st.session_state.token)
    except backend.BackendError as exc:
        st.error(f"The room's transfers cannot be listed: {plain(str(exc))}")
        return
    if not entries:
        st.info("No transfer in this room yet: upload or download a file, then come back.")
        st.page_link("views/files.py", label="File Transfer", icon=":material/swap_vert:")
        return
    chosen = pick(entries)
    st.button("Refresh", key="analytics_refresh", icon=":material/refresh:")
    if not chosen:
        st.info("Pick one or more transfers above.")
        return
    try:
        runs = load_runs(entries, chosen)
    except backend.BackendError as exc:
        st.error(f"The transfers' events cannot be fetched: {plain(str(exc))}")
        return
    for run in runs:
        if not run.trace.rows:
            with st.container(border=True):
                st.text(run.label)  # a peer's file name: plain text, never markdown
                st.caption("No events yet: an upload's events arrive when its client "
                           "reports them, right after the transfer.")  # fmt: skip
    shown = [run for run in runs if run.trace.rows]
    if shown:
        stats_table(shown)
        draw_charts(shown)
        recent_events(shown)
    downloads(runs)
    explanations()


main()
