"""File Transfer: the room's files (download, delete) and an upload over reliable UDP with a
choice of congestion control, codec and emulated network, its progress and congestion window
shown live while it runs, then its result and a link to it in Analytics.

File names and uploaders come from other people: they are shown with ``st.dataframe`` and
plain-text widgets only, never as markdown.
"""

from __future__ import annotations

import datetime
import time

import altair as alt
import streamlit as st

import backend
import state
from backend import transfers
from formats import size_text
from plain import plain

state.require_room()

UPLOAD_CAP_MB = 200  # the browser's upload cap (Streamlit keeps the file in memory)
FILES_REFRESH_S = 4.0  # someone else's upload or delete shows up within this
JOB_KEY = "upload"  # one upload at a time per browser session
ANALYTICS_PAGE = "views/analytics.py"
LOSS_KINDS = ("FAST_RETRANSMIT", "TIMEOUT")  # marked on the live chart
CHART_HEIGHT_PX = 240


def when(unix: int) -> str:
    return datetime.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- the files


def room_files() -> None:
    """The list, and actions on the file chosen in it. A timer (``watch_files``) reruns
    the page when the list changed (someone's upload or delete), not otherwise."""
    token = st.session_state.token
    try:
        files = transfers.list_files(token)
    except backend.BackendError as exc:
        watch_files(token, None)
        st.error(f"The file service is unavailable: {plain(str(exc))}")
        return
    watch_files(token, listing(files))
    if not files:
        st.info("No files in this room yet.")
        return
    st.dataframe(
        [
            {"Name": f.name, "Size": size_text(f.size), "Bytes": f.size,
             "SHA-256": f.sha256[:12], "Uploaded by": f.uploaded_by,
             "Time": when(f.created_unix)}
            for f in files
        ],
        hide_index=True,
    )  # fmt: skip
    by_name = {f.name: f for f in files}
    entry = by_name[st.selectbox("File", list(by_name), key="files_chosen")]
    st.text(f"{entry.name}: {entry.size:,} bytes, SHA-256 {entry.sha256}")
    left, right = st.columns(2)
    with left:
        download(token, entry)
    with right:
        if st.button("Delete file", key="files_delete", icon=":material/delete:"):
            try:
                transfers.delete_file(token, entry.name)
            except backend.BackendError as exc:
                st.error(f"Could not delete it: {plain(str(exc))}")
            else:
                st.rerun()


def listing(files: list[transfers.FileEntry]) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, f.sha256) for f in files)


@st.fragment(run_every=FILES_REFRESH_S)
def watch_files(token: str, shown: tuple[tuple[str, str], ...] | None) -> None:
    """Draws nothing; reruns the page when the room's files changed. Its arguments are
    those of the last full run."""
    try:
        now = listing(transfers.list_files(token))
    except backend.BackendError:
        now = None  # the full run shows the error
    if now != shown:
        st.rerun()


def download(token: str, entry: transfers.FileEntry) -> None:
    """Two steps: the download over reliable UDP, then the browser's save. Not one
    ``download_button(data=callable)``: Streamlit keeps the bytes such a callable returns
    only until two script runs of *any* session end (``remove_orphaned_files``), and the
    live fragments (0.5 s each, per person) end runs so often that the browser's fetch of
    them often found them gone (a 404: measured here, 5 downloads in 8 cancelled). Bytes
    given to the button itself stay while it is shown. One file is kept per session."""
    fetched = st.session_state.get("files_fetched")
    if isinstance(fetched, transfers.Fetched) and (fetched.name, fetched.sha256) == (
        entry.name,
        entry.sha256,
    ):
        st.download_button(
            "Save file", data=fetched.data, file_name=entry.name, on_click="ignore",
            mime="application/octet-stream", key="files_save", type="primary",
            icon=":material/save:",
        )  # fmt: skip
        return
    if entry.size > UPLOAD_CAP_MB << 20:  # Streamlit counts MiB, as size_text does
        st.caption(f"Larger than {UPLOAD_CAP_MB} MB: `syncrox-trio get NAME -o PATH` instead.")
        return
    if st.button("Download file", key="files_fetch", icon=":material/download:"):
        st.session_state.pop("files_fetched", None)  # one file held at a time
        with st.spinner(f"Downloading {size_text(entry.size)} over reliable UDP..."):
            try:
                data = transfers.download_bytes(token, entry.name, entry.size)
            except backend.BackendError as exc:
                st.error(f"The download failed: {plain(str(exc))}")
                return
        st.session_state["files_fetched"] = transfers.Fetched(entry.name, entry.sha256, data)
        st.rerun()


# --------------------------------------------------------------------------- the upload


def current_job() -> transfers.TransferJob | None:
    job = state.links().job(JOB_KEY)
    return job if isinstance(job, transfers.TransferJob) else None


def upload_form(busy: bool) -> None:
    uploaded = st.file_uploader("File to upload", key="files_upload", max_upload_size=UPLOAD_CAP_MB)
    st.caption(
        f"Up to {UPLOAD_CAP_MB} MB from the browser. Larger files: "
        "`syncrox-trio send FILE --room CODE --user NAME` from a terminal."
    )
    algo_col, codec_col, preset_col = st.columns(3)
    algo = algo_col.selectbox(
        "Congestion control", transfers.ALGORITHMS_SHOWN, key="files_algo",
        index=transfers.ALGORITHMS_SHOWN.index(transfers.DEFAULT_ALGORITHM),
        format_func=lambda name: {"newreno": "NewReno", "cubic": "CUBIC"}.get(
            name, name.capitalize()),
    )  # fmt: skip
    codec = codec_col.selectbox("Codec", transfers.CODECS, key="files_codec")
    preset = preset_col.selectbox("Network", list(transfers.PRESETS), key="files_preset")
    try:
        netem = network(preset)
    except backend.BackendError as exc:
        st.error(plain(str(exc)))
        return
    start = st.button(
        "Start upload", key="files_start", type="primary", icon=":material/upload:",
        disabled=uploaded is None or busy,
    )  # fmt: skip
    if start and uploaded is not None:
        plan = transfers.UploadPlan(algo=algo, codec=codec, preset=preset, netem=netem)
        begin_upload(uploaded.name, uploaded.getvalue(), plan)


def network(preset: str) -> transfers.NetemConfig | None:
    if preset != transfers.CUSTOM:
        return transfers.PRESETS[preset]
    loss_col, delay_col, seed_col = st.columns(3)
    loss = loss_col.number_input("Loss %", 0.0, 100.0, 2.0, step=0.5, key="files_loss")
    delay = delay_col.number_input("Delay ms (one way)", 0.0, 5000.0, 0.0, key="files_delay")
    seed = seed_col.number_input("Seed", 0, 2**31 - 1, 1, key="files_seed")
    return transfers.custom_netem(float(loss), float(delay), int(seed))


def begin_upload(name: str, data: bytes, plan: transfers.UploadPlan) -> None:
    try:
        where = backend.endpoints()
    except Exception as exc:
        st.error(backend.errors.user_message(exc))
        return
    job = transfers.TransferJob(where, st.session_state.token, name, data, plan)
    state.links().add_job(JOB_KEY, job.start())
    st.rerun()


@st.fragment(run_every=state.LIVE_INTERVAL_S)
def live_upload() -> None:
    job = current_job()
    if job is None:
        return
    view = job.snapshot()
    if not view.running:
        st.rerun()  # the whole page: the result, and the list with the new file
    show_job(view)


def show_job(view: transfers.JobView) -> None:
    plan = view.plan
    st.text(f"{view.name}: {plan.algo}, {plan.codec}, network: {plan.preset}")
    fraction = min(view.done / view.total, 1.0) if view.total else 1.0
    if view.outcome is not None and view.outcome.ok:
        fraction = 1.0
    st.progress(fraction, text=f"{view.done:,} / {view.total:,} bytes ({fraction:.0%})")
    if view.points:
        # The newest event's time tells a viewer (and bench/ui.py) how fresh the chart is.
        newest = clock_ms(view.newest_event_at)
        st.caption(f"CWND vs Event Sequence (solid: cwnd, dashed: ssthresh) · "
                   f"{view.events_seen:,} events, newest at {newest}")  # fmt: skip
        st.altair_chart(cwnd_chart(view.points), width="stretch", height=CHART_HEIGHT_PX + 90)
    elif view.running:
        st.caption("Waiting for the first acknowledgements...")


def clock_ms(at: float | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def cwnd_chart(points: list[transfers.Point]) -> alt.LayerChart:
    rows = [
        {"event": p.index, "cwnd": p.cwnd, "ssthresh": p.ssthresh, "kind": p.kind} for p in points
    ]
    data = alt.InlineData(values=rows)
    x = alt.X("event:Q", title="Event sequence")
    cwnd = (
        alt.Chart(data)
        .mark_line(interpolate="step-after", color="#1f77b4")
        .encode(x=x, y=alt.Y("cwnd:Q", title="Window (chunks)"), tooltip=["event:Q", "cwnd:Q"])
    )
    ssthresh = (
        alt.Chart(data)
        .transform_filter("isValid(datum.ssthresh)")
        .mark_line(interpolate="step-after", strokeDash=[6, 4], color="#ff7f0e")
        .encode(x=x, y="ssthresh:Q", tooltip=["event:Q", "ssthresh:Q"])
    )
    losses = (
        alt.Chart(data)
        .transform_filter(alt.FieldOneOfPredicate(field="kind", oneOf=list(LOSS_KINDS)))
        .mark_point(filled=True, size=60)
        .encode(
            x=x, y="cwnd:Q",
            color=alt.Color("kind:N", title="Event", legend=alt.Legend(orient="bottom"),
                            scale=alt.Scale(domain=list(LOSS_KINDS), range=["#d62728", "#9467bd"])),
            shape=alt.Shape("kind:N", scale=alt.Scale(domain=list(LOSS_KINDS),
                                                      range=["triangle-down", "cross"])),
            tooltip=["event:Q", "kind:N", "cwnd:Q"],
        )
    )  # fmt: skip
    return alt.LayerChart(layer=[cwnd, ssthresh, losses], height=CHART_HEIGHT_PX)


def show_outcome(view: transfers.JobView) -> None:
    outcome = view.outcome
    if outcome is None:
        st.error(plain(f"The upload of {view.name} ended: {view.problem or 'unknown reason'}"))
        return
    if outcome.ok:
        st.success("Stored: verified by SHA-256 on the server.")
    else:
        st.error(f"The upload failed: {plain(str(outcome.failure))}")
    first, second = st.columns(3), st.columns(3)
    first[0].metric("Goodput", f"{size_text(round(outcome.goodput_bytes_per_s))}/s")
    first[1].metric("Retransmissions", outcome.retransmissions)
    first[2].metric("Timeouts", outcome.timeouts)
    second[0].metric(
        "Final cwnd", "-" if outcome.final_cwnd is None else f"{outcome.final_cwnd:.1f}"
    )
    second[1].metric("SRTT", "-" if outcome.srtt_ms is None else f"{outcome.srtt_ms:.1f} ms")
    second[2].metric("Time", f"{outcome.seconds:.2f} s")
    st.caption(f"Transfer {outcome.transfer_id} · {outcome.events:,} congestion events")
    if outcome.report_failure:
        st.warning(
            f"Its events could not be stored for Analytics: {plain(str(outcome.report_failure))}"
        )
    if outcome.transfer_id and st.button(
        "Open in Analytics", key="files_to_analytics", icon=":material/monitoring:"
    ):
        st.session_state["analytics_preselect"] = [outcome.transfer_id]
        st.switch_page(ANALYTICS_PAGE)


# --------------------------------------------------------------------------- the page


st.title("File Transfer")
job = current_job()
snapshot = job.snapshot() if job is not None else None
busy = snapshot is not None and snapshot.running
upload_col, files_col = st.columns([1, 1], gap="large")
with upload_col:
    st.subheader("Upload")
    upload_form(busy)
    if snapshot is not None and snapshot.running:
        live_upload()
    elif snapshot is not None:
        show_job(snapshot)
        show_outcome(snapshot)
with files_col:
    st.subheader("Files in this room")
    room_files()
