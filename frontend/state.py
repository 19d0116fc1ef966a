"""Per-browser-session state, set once with guards; the session's live links; the sidebar.

A room login lives in session state. A reload starts a new Streamlit session, so the login
is also kept in the tab's ``sessionStorage`` (``keeper``) and checked with the room
manager (``WHOAMI``) before it is used again: never in the URL, never in a cookie sent to
other sites, gone when the tab closes.
"""

from __future__ import annotations

import contextlib
import logging

import streamlit as st

import backend
import keeper
from backend.chat import ChatLink
from backend.session import SessionLinks
from plain import plain

DEFAULTS: dict[str, object] = {"user": "", "room": "", "token": ""}
LIVE_INTERVAL_S = 0.5  # how often live fragments redraw (Streamlit has no server push)
logger = logging.getLogger("syncrox.ui")


def ensure_defaults() -> None:
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value


def in_room() -> bool:
    return bool(st.session_state.room and st.session_state.token)


def require_room() -> None:
    """The first line of every room page: without a room, there is nothing to show."""
    if not in_room():
        st.info("Create or join a room first.")
        st.page_link("views/home.py", label="Home", icon=":material/home:")
        st.stop()


def enter_room(user: str, room: str, token: str) -> None:
    st.session_state.user = user
    st.session_state.room = room
    st.session_state.token = token


def leave_room() -> None:
    token = st.session_state.token
    links().close_all()
    _links.clear()  # type: ignore[attr-defined]
    if token:
        # If the server cannot be told, the membership lapses on its own; leaving locally
        # must always work.
        with contextlib.suppress(backend.BackendError):
            backend.leave_room(token)
    for key, value in DEFAULTS.items():
        st.session_state[key] = value
    keeper.forget()


@st.cache_resource(scope="session", on_release=SessionLinks.close_all, show_spinner=False)
def _links() -> SessionLinks:
    return SessionLinks()


def links() -> SessionLinks:
    """This browser session's live links (ended when the tab closes or the user leaves)."""
    found = _links()
    if found.closed:  # left the room earlier in this session: start afresh
        _links.clear()  # type: ignore[attr-defined]
        found = _links()
    return found


def chat_link() -> ChatLink:
    """The session's chat link for the room it is in (started on first use)."""
    try:
        where = backend.endpoints()
    except Exception as exc:
        raise backend.BackendError(backend.errors.user_message(exc)) from exc
    session = st.session_state
    return links().chat(where, session.room, session.user, session.token)


def restore_login() -> None:
    """After a reload: take the tab's saved login back if the room manager still knows it."""
    if in_room():
        keeper.remember(st.session_state.room, st.session_state.user, st.session_state.token)
        return
    saved = keeper.recall()
    if saved is None:
        return
    try:
        room, user = backend.whoami(saved.token)
    except backend.BackendError as exc:
        logger.info("saved login not restored: %s", exc)
        keeper.forget()
        return
    enter_room(user, room, saved.token)  # the next run saves it again (one mount a run)


def sidebar() -> None:
    with st.sidebar:
        if not in_room():
            st.caption("Not in a room")
            return
        st.caption("Signed in")
        st.text(f"{st.session_state.user} · room {st.session_state.room}")
        _people_here()
        if st.button("Leave room", key="leave_room", icon=":material/logout:"):
            leave_room()
            st.rerun()


@st.fragment(run_every=LIVE_INTERVAL_S)
def _people_here() -> None:
    if not in_room():
        return
    try:
        view = chat_link().snapshot()
    except backend.BackendError as exc:
        st.caption(f"People here: unknown ({plain(str(exc))})")
        return
    st.caption(f"People here ({len(view.present)})")
    st.text("\n".join(view.present) or "nobody yet")
    if view.problem:
        st.caption(f"Chat: {view.status}: {plain(view.problem)}")
