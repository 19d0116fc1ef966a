"""Home: create a room or join one with its 4-digit code; in a room, the room's dashboard
(its code, who is here, a card per page) and the status of every service."""

from __future__ import annotations

import unicodedata

import streamlit as st

import backend
import sitemap
import state
from backend import status
from plain import plain

st.title("SyncroX")


def lobby() -> None:
    typed = st.text_input("Your name", key="home_user", max_chars=32,
                          help="1-32 letters, digits, _ - . (no spaces)")  # fmt: skip
    # The server wants names in NFC: a pasted "é" written as e + accent is the same name.
    user = unicodedata.normalize("NFC", typed.strip())
    create_tab, join_tab = st.tabs(["Create a room", "Join a room"])
    with create_tab:
        if st.button("Create a new room", key="home_create", type="primary"):
            try:
                code, token = backend.create_room(user)
            except backend.BackendError as exc:
                st.error(plain(str(exc)))
            else:
                state.enter_room(user, code, token)
                st.rerun()
    with join_tab:
        code = st.text_input("Room code", key="home_code", max_chars=4, placeholder="1234")
        if st.button("Join", key="home_join"):
            try:
                token = backend.join_room(code.strip(), user)
            except backend.BackendError as exc:
                st.error(plain(str(exc)))
            else:
                state.enter_room(user, code.strip(), token)
                st.rerun()


def dashboard() -> None:
    st.subheader(f"Room {st.session_state.room}")
    # A name is plain text (``_x_`` would be italic in markdown).
    st.text(f"You are {st.session_state.user}. Share the code with others so they can join.")
    left, right = st.columns([1, 2])
    with left:
        st.metric("Room code", st.session_state.room)
        people_here()
    with right:
        for page in sitemap.ROOM_PAGES:
            with st.container(border=True):
                st.page_link(page.path, label=page.title, icon=page.icon)
                st.caption(page.blurb)


@st.fragment(run_every=state.LIVE_INTERVAL_S)
def people_here() -> None:
    try:
        view = state.chat_link().snapshot()
    except backend.BackendError as exc:
        st.warning(f"Who is here is unknown: {plain(str(exc))}")
        return
    st.markdown(f"**Here now ({len(view.present)})**")
    st.text("\n".join(view.present) or "nobody yet")


def service_status() -> None:
    with st.expander("Service status", expanded=state.in_room()):
        try:
            probes = status.probe_all()
        except backend.BackendError as exc:
            st.error(plain(str(exc)))
            return
        for probe in probes:  # labels are ours; a failure's detail is shown as plain text
            if probe.up:
                st.markdown(f":green-badge[up] {probe.label} · {probe.latency_ms:.1f} ms")
            else:
                st.markdown(f":red-badge[down] {probe.label} · {plain(probe.detail)}")


if state.in_room():
    dashboard()
else:
    lobby()
service_status()
