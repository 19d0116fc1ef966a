"""Keeps a tab's room login across a reload, in that tab's ``sessionStorage``.

A reload starts a new Streamlit session with empty session state; without this, a user who
pressed F5 was thrown out of the room, and their name stayed reserved by the token they had
just lost. The login (room, user, token) is written to the tab's ``sessionStorage`` (never
the URL; gone when the tab closes; not sent anywhere by the browser) by a tiny v2 component,
read back once per new session, and only used after the room manager confirms the token
(``state.restore_login``). Leaving the room erases it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import streamlit as st

STORAGE_KEY = "syncrox.login"
_JS = f"""
export default function ({{ data, setStateValue }}) {{
  const store = window.sessionStorage;
  if (data && data.clear) store.removeItem("{STORAGE_KEY}");
  if (data && data.save) store.setItem("{STORAGE_KEY}", JSON.stringify(data.save));
  if (data && data.ask) setStateValue("saved", store.getItem("{STORAGE_KEY}") || "");
}}
"""
_COMPONENT = st.components.v2.component("syncrox_login_keeper", js=_JS)
_CHECKED = "keeper_checked"  # this session has read the tab's saved login once
_CLEAR = "keeper_clear"  # leaving: erase it on the next run


@dataclass(frozen=True)
class Login:
    room: str
    user: str
    token: str


def _mount(data: dict[str, object]) -> object:
    with st.sidebar:
        result = _COMPONENT(key="syncrox_login_keeper", data=data, on_saved_change=_ignore)
    return getattr(result, "saved", None)


def _ignore() -> None:
    """The component's state change only needs to rerun the app."""


def remember(room: str, user: str, token: str) -> None:
    st.session_state[_CHECKED] = True
    _mount({"save": {"room": room, "user": user, "token": token}})


def forget() -> None:
    st.session_state[_CLEAR] = True


def recall() -> Login | None:
    """The tab's saved login, once per session (``None`` until the browser has answered,
    and ever after the first answer)."""
    if st.session_state.pop(_CLEAR, False):
        st.session_state[_CHECKED] = True
        _mount({"clear": True})
        return None
    if st.session_state.get(_CHECKED):
        _mount({})
        return None
    saved = _mount({"ask": True})
    if saved is None:
        return None  # the browser has not answered yet: it reruns the app when it does
    st.session_state[_CHECKED] = True
    return _parse(saved)


def _parse(saved: object) -> Login | None:
    if not isinstance(saved, str) or not saved:
        return None
    try:
        fields = json.loads(saved)
        login = Login(str(fields["room"]), str(fields["user"]), str(fields["token"]))
    except (ValueError, KeyError, TypeError):
        return None
    return login
