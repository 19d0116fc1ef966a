"""Per-browser-session state, set once with guards, and the shared sidebar."""

from __future__ import annotations

import contextlib

import streamlit as st

import backend

DEFAULTS: dict[str, object] = {"user": "", "room": "", "token": ""}


def ensure_defaults() -> None:
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value


def in_room() -> bool:
    return bool(st.session_state.room and st.session_state.token)


def enter_room(user: str, room: str, token: str) -> None:
    st.session_state.user = user
    st.session_state.room = room
    st.session_state.token = token


def leave_room() -> None:
    token = st.session_state.token
    if token:
        # If the server cannot be told, the membership lapses on its own; leaving locally
        # must always work.
        with contextlib.suppress(backend.BackendError):
            backend.leave_room(token)
    for key, value in DEFAULTS.items():
        st.session_state[key] = value


def sidebar() -> None:
    with st.sidebar:
        if in_room():
            st.caption("Signed in")
            st.text(f"{st.session_state.user} · room {st.session_state.room}")
            if st.button("Leave room", key="leave_room", icon=":material/logout:"):
                leave_room()
                st.rerun()
        else:
            st.caption("Not in a room")
