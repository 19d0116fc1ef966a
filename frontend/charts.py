"""Altair builders for the congestion charts (ui-design.md §3), from typed series.

Colours and shapes are set explicitly: Streamlit's theme would draw every algorithm in the
same blue. Each algorithm has one colour on every chart; each notable event kind one shape
and colour. The x axes are per transfer (a chunk's seq, an event's index within its own
transfer, a round of its own transfer), never one counter across runs. Long traces are
thinned for drawing (``series.thin``), never their loss reactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt

from backend.analytics import EventKind, Run, series

ALGO_COLOURS = {"tahoe": "#d62728", "reno": "#1f77b4", "newreno": "#2ca02c", "cubic": "#9467bd"}
OTHER_COLOUR = "#7f7f7f"
ALGO_NAMES = {"tahoe": "Tahoe", "reno": "Reno", "newreno": "NewReno", "cubic": "CUBIC"}
# Notable events: (shape, colour). ACKs are the lines themselves.
KIND_STYLE = {
    EventKind.DUP_ACK: ("circle", "#bcbd22"),
    EventKind.FAST_RETRANSMIT: ("triangle-down", "#ff7f0e"),
    EventKind.RECOVERY_EXIT: ("diamond", "#17becf"),
    EventKind.TIMEOUT: ("cross", "#000000"),
    EventKind.TAIL_PROBE: ("square", "#8c564b"),
    EventKind.WINDOW_PROBE: ("triangle-up", "#e377c2"),
    EventKind.FAILED: ("stroke", "#000000"),
}
MARKED = frozenset(KIND_STYLE)
MAX_POINTS = 4000  # per transfer and series: Vega draws 20 000 fine, the page stays quick
PANEL_HEIGHT = 300
DASHED = [6, 4]
DOTTED = [2, 3]
DASH_DOT = [10, 3, 2, 3]
MATHIS_LINE = f"Mathis window {series.MATHIS_C:.2f}/√p"
MEAN_LINE = "measured mean per round"
CWND_LINE = "cwnd"
SSTHRESH_LINE = "ssthresh"
LINE_DASHES = {CWND_LINE: [1, 0], SSTHRESH_LINE: DASHED, MATHIS_LINE: DOTTED, MEAN_LINE: DASH_DOT}


def algo_name(algo: str) -> str:
    return ALGO_NAMES.get(algo, algo)


def _algo_colour(runs: Sequence[Run]) -> alt.Color:
    """The algorithm's colour; a legend only where several transfers share the plot (a
    per-transfer panel's title names its algorithm, and its legends need the room)."""
    names = sorted({algo_name(run.algo) for run in runs})
    by_name = {algo_name(algo): colour for algo, colour in ALGO_COLOURS.items()}
    scale = alt.Scale(domain=names, range=[by_name.get(name, OTHER_COLOUR) for name in names])
    legend = alt.Legend(title="Algorithm") if len(runs) > 1 else None
    return alt.Color("algorithm:N", scale=scale, legend=legend)


def _kind_scale(kinds: Sequence[EventKind], part: int) -> alt.Scale:
    return alt.Scale(domain=[k.value for k in kinds], range=[KIND_STYLE[k][part] for k in kinds])


def _kind_encodings(kinds: Sequence[EventKind]) -> dict[str, Any]:
    """Event kinds on ``fill``/``stroke`` and ``shape``: ``color`` is the algorithm's, and
    separate channels keep one legend each without resolving scales apart."""
    colours, shapes = _kind_scale(kinds, 1), _kind_scale(kinds, 0)
    return {
        "fill": alt.Fill("event:N", title="Event", scale=colours),
        "stroke": alt.Stroke("event:N", title="Event", scale=colours),
        "shape": alt.Shape("event:N", title="Event", scale=shapes),
    }


def _panel(chart: alt.LayerChart, run: Run) -> alt.LayerChart:
    """A per-transfer chart, titled with the transfer (which names its algorithm)."""
    panel: alt.LayerChart = chart.properties(title=run.label, height=PANEL_HEIGHT)
    return panel


def _data(rows: list[dict[str, Any]]) -> alt.InlineData:
    return alt.InlineData(values=rows)


# ----------------------------------------------------------------- RTT vs Chunk Sequence


def rtt_chart(run: Run, *, show_rto: bool) -> alt.LayerChart:
    """RTT samples by chunk seq, the SRTT line, optionally the RTO (a dashed step: on a
    fast path it dwarfs the RTT), and a rule at each fast retransmit or timeout."""
    name = algo_name(run.algo)
    points = series.thin(series.rtt_points(run.trace), MAX_POINTS, keep=lambda p: False)
    rows = [
        {"order": i, "seq": p.seq, "rtt_ms": p.rtt_ms, "srtt_ms": p.srtt_ms, "rto_ms": p.rto_ms,
         "algorithm": name}
        for i, p in enumerate(points)
    ]  # fmt: skip
    colour = _algo_colour([run])
    x = alt.X("seq:Q", title="Chunk sequence (the chunk an RTT sample came from)")
    base = alt.Chart(_data(rows)).encode(x=x)
    layers: list[alt.Chart] = [
        base.mark_circle(size=18, opacity=0.55).encode(
            y=alt.Y("rtt_ms:Q", title="Milliseconds"), color=colour,
            tooltip=["seq:Q", "rtt_ms:Q", "srtt_ms:Q", "rto_ms:Q"],
        ),
        base.mark_line(strokeWidth=2).encode(y="srtt_ms:Q", color=colour, order="order:Q"),
    ]  # fmt: skip
    if show_rto:
        layers.append(
            base.mark_line(interpolate="step-after", strokeDash=DASHED, color="#555555").encode(
                y="rto_ms:Q", order="order:Q"
            )
        )
    layers.append(_loss_rules(run, x_field="seq"))
    return _panel(alt.LayerChart(layer=layers), run)


def _loss_rules(run: Run, *, x_field: str) -> alt.Chart:
    kinds = [EventKind.FAST_RETRANSMIT, EventKind.TIMEOUT]
    rows = [
        {"seq": m.seq, "index": m.index, "event": m.kind.value}
        for m in series.marks(run.trace, frozenset(kinds))
    ]
    enc = _kind_encodings(kinds)
    rules: alt.Chart = (
        alt.Chart(_data(rows))
        .mark_rule(strokeWidth=1.5, opacity=0.7)
        .encode(x=f"{x_field}:Q", stroke=enc["stroke"], tooltip=["event:N", f"{x_field}:Q"])
    )
    return rules


# ---------------------------------------------------------------- CWND vs Event Sequence


def cwnd_chart(run: Run) -> alt.LayerChart:
    """cwnd after each event (a step line), ssthresh dashed, a marker per notable event,
    fast recovery shaded; x is the event's index within its own transfer."""
    name = algo_name(run.algo)
    points = series.thin(series.cwnd_points(run.trace), MAX_POINTS, keep=lambda p: p.kind in MARKED)
    rows = [
        {"index": p.index, "ms": round(p.elapsed_ms, 3), "seq": p.seq, "cwnd": p.cwnd,
         "ssthresh": p.ssthresh, "event": p.kind.value, "algorithm": name}
        for p in points
    ]  # fmt: skip
    colour = _algo_colour([run])
    x = alt.X("index:Q", title="Event sequence (index within this transfer)")
    base = alt.Chart(_data(rows)).encode(x=x)
    tooltip = ["index:Q", "event:N", "seq:Q", "cwnd:Q", "ssthresh:Q", "ms:Q"]
    style = _line_style([CWND_LINE, SSTHRESH_LINE])
    cwnd = (
        _named(base, CWND_LINE)
        .mark_line(interpolate="step-after", strokeWidth=2)
        .encode(y=alt.Y("cwnd:Q", title="Window (chunks)"), color=colour, strokeDash=style)
    )
    ssthresh = (
        _named(base, SSTHRESH_LINE)
        .mark_line(interpolate="step-after")
        .encode(y="ssthresh:Q", color=colour, strokeDash=style)
    )
    present = [k for k in KIND_STYLE if any(p.kind is k for p in points)]
    shown = alt.FieldOneOfPredicate(field="event", oneOf=[k.value for k in present])
    markers = (
        base.transform_filter(shown)
        .mark_point(filled=True, size=70, strokeWidth=1.5)
        .encode(y="cwnd:Q", tooltip=tooltip, **_kind_encodings(present))
    )  # fmt: skip
    layers = [_recovery_bands(run), cwnd, ssthresh, *([markers] if present else [])]
    return _panel(alt.LayerChart(layer=layers), run)


def _recovery_bands(run: Run) -> alt.Chart:
    rows = [{"first": s.first, "last": s.last} for s in series.recovery_spans(run.trace)]
    tooltip = [alt.Tooltip("first:Q", title="recovery from"), alt.Tooltip("last:Q", title="to")]
    bands: alt.Chart = (
        alt.Chart(_data(rows))
        .mark_rect(color="#9e9e9e", opacity=0.18)
        .encode(x="first:Q", x2="last:Q", tooltip=tooltip)
    )
    return bands


# ---------------------------------------------------- Window Size vs Transmission Round


def rounds_chart(runs: Sequence[Run]) -> alt.LayerChart:
    """Every selected transfer's window per round on one axis (round 1 of each is its own
    first round), coloured by algorithm; ssthresh dashed; the Mathis window C/√p dotted and
    the measured mean window per round dash-dotted, one of each per transfer."""
    rows: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for run in runs:
        name = algo_name(run.algo)
        for r in series.rounds(run.trace):
            rows.append({"round": r.number, "cwnd": r.cwnd, "ssthresh": r.ssthresh,
                         "acked": r.acked, "ms": round(r.seconds * 1000, 3), "algorithm": name,
                         "transfer": run.label})  # fmt: skip
        rules += _window_rules(run, name)
    colour = _algo_colour(runs)
    style = _line_style([CWND_LINE, SSTHRESH_LINE, MATHIS_LINE, MEAN_LINE])
    base = alt.Chart(_data(rows)).encode(x=alt.X("round:Q", title="Transmission round"))
    tooltip = ["transfer:N", "round:Q", "cwnd:Q", "ssthresh:Q", "acked:Q", "ms:Q"]
    y = alt.Y("cwnd:Q", title="Window size (chunks)")
    cwnd = _named(base, CWND_LINE).mark_line(interpolate="step-after", strokeWidth=2)
    cwnd = cwnd.encode(y=y, color=colour, strokeDash=style, detail="transfer:N")
    # Points of their own: on the line mark they would blank the line legend's symbols.
    points = base.mark_circle(size=30).encode(y=y, color=colour, tooltip=tooltip)
    ssthresh = _named(base, SSTHRESH_LINE).mark_line(interpolate="step-after", opacity=0.8)
    ssthresh = ssthresh.encode(y="ssthresh:Q", color=colour, strokeDash=style, detail="transfer:N")
    lines = alt.Chart(_data(rules)).mark_rule(strokeWidth=1.5).encode(
        y="window:Q", color=colour, detail="transfer:N", strokeDash=style,
        tooltip=["transfer:N", "line:N", alt.Tooltip("window:Q", format=".2f")],
    )  # fmt: skip
    chart: alt.LayerChart = alt.LayerChart(layer=[cwnd, points, ssthresh, lines])
    return chart.properties(height=PANEL_HEIGHT + 60)


def _line_style(lines: Sequence[str]) -> alt.StrokeDash:
    """Solid cwnd, dashed ssthresh, dotted Mathis window, dash-dotted measured mean: one
    legend that names every line (colour says the algorithm)."""
    scale = alt.Scale(domain=list(lines), range=[LINE_DASHES[line] for line in lines])
    legend = alt.Legend(
        symbolType="stroke", symbolStrokeColor="#444444", symbolStrokeWidth=2, symbolSize=300
    )
    return alt.StrokeDash("line:N", title="Line", scale=scale, legend=legend)


def _named(chart: alt.Chart, line: str) -> alt.Chart:
    named: alt.Chart = chart.transform_calculate(line=f"'{line}'")  # ours, no quote in it
    return named


def _window_rules(run: Run, name: str) -> list[dict[str, Any]]:
    got = series.stats(run.trace)
    found = []
    if got.mathis_window is not None:
        found.append((MATHIS_LINE, got.mathis_window))
    if got.mean_window is not None:
        found.append((MEAN_LINE, got.mean_window))
    return [
        {"window": window, "line": line, "algorithm": name, "transfer": run.label}
        for line, window in found
    ]
