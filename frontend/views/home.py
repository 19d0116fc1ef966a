"""Home: create a room or join one with its 4-digit code; see which services are up."""

from __future__ import annotations

import unicodedata

import streamlit as st

import backend
import state

st.title("SyncroX")

if state.in_room():
    st.subheader(f"Room {st.session_state.room}")
    st.write(f"You are **{st.session_state.user}**. Share the code with others so they can join.")
    st.metric("Room code", st.session_state.room)
else:
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
                st.error(str(exc))
            else:
                state.enter_room(user, code, token)
                st.rerun()
    with join_tab:
        code = st.text_input("Room code", key="home_code", max_chars=4, placeholder="1234")
        if st.button("Join", key="home_join"):
            try:
                token = backend.join_room(code.strip(), user)
            except backend.BackendError as exc:
                st.error(str(exc))
            else:
                state.enter_room(user, code.strip(), token)
                st.rerun()

with st.expander("Service status"):
    try:
        for name, up in backend.service_status().items():
            st.write(f"{'🟢' if up else '🔴'} {name}")
    except backend.BackendError as exc:
        st.error(str(exc))
