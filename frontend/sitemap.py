"""The pages of the web UI, in one place: navigation, the sidebar and Home's cards use it.

Home is always there; the room pages show in the menu once the browser session is in a room
(and each guards itself with ``state.require_room``). A new page is one ``RoomPage`` here and one
module in ``views/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class RoomPage:
    path: str  # the view module, relative to frontend/
    title: str
    icon: str
    blurb: str  # one line on Home's card


HOME = "views/home.py"
ROOM_PAGES = (
    RoomPage("views/chat.py", "Chat", ":material/chat:", "Messages and images, live."),
    RoomPage(
        "views/files.py",
        "File Transfer",
        ":material/swap_vert:",
        "Reliable UDP with Tahoe, Reno, NewReno or CUBIC; live congestion window.",
    ),
    RoomPage(
        "views/execution.py",
        "Code Execution",
        ":material/terminal:",
        "Run Python, C, C++ or Java in a locked-down Docker sandbox.",
    ),
    RoomPage(
        "views/analytics.py",
        "Congestion Control Analytics",
        ":material/monitoring:",
        "RTT, congestion window and rounds of the room's transfers.",
    ),
)


def home_page() -> st.Page:
    return st.Page(HOME, title="Home", icon=":material/home:", default=True)


def room_page(page: RoomPage, *, visible: bool) -> st.Page:
    return st.Page(
        page.path, title=page.title, icon=page.icon, visibility="visible" if visible else "hidden"
    )


def for_session(in_room: bool) -> list[st.Page]:
    """Every page is registered, room pages hidden outside a room: a reload of a room page
    (its first run happens before the saved login is restored) must find its page, not
    Streamlit's "Page not found"."""
    return [home_page(), *(room_page(page, visible=in_room) for page in ROOM_PAGES)]
