"""Chat: the room's last messages, then live ones; images inline; text and an image sent
from one input.

What it shows comes from the session's chat link (``backend.chat.ChatLink``), which
follows the room in a thread of its own and resumes after a dropped connection with
nothing missing and nothing twice; a fragment redraws a snapshot of it every
``state.LIVE_INTERVAL_S``. The chat input stays outside that fragment, so what someone is
typing survives the redraws.

Decisions:

- **Peer data is plain text.** Messages, user names and file names are shown with
  ``st.text`` (and image names as ``alt`` text) only: never markdown or HTML, so a message
  like ``<img src=x onerror=...>`` or ``![x](http://...)`` reads as what was typed, runs
  nothing and makes no viewer's browser fetch anything. (Streamlit's markdown elements,
  ``st.caption``, ``st.warning`` and the like, only ever get our own words here.)
- **This page sends no TYPING.** ``st.chat_input`` tells Python nothing until the message is
  submitted (no keystroke reaches the server), so a TYPING notice could only go out with a
  message already delivered, or on a timer that would claim typing nobody did. The page
  shows the notices of clients that do see keystrokes (the terminal client).
- **Several lines, several messages.** A chat message is one line on the wire (no line
  breaks), while the input accepts Shift+Enter: each non-blank line is sent as its own
  message, in order; the first refusal stops the rest and says how many went out.
- **Known limit (Streamlit's).** An input holds one submitted value until a run takes it;
  two messages submitted within a few milliseconds of each other can collapse into the
  second (measured: once in nine lines sent back to back by a script). Sending in the
  submit callback keeps that window as small as Streamlit allows; a person does not type
  that fast.
- **Bounded.** The page draws the last ``RENDER_LIMIT`` entries the link holds; images are
  fetched by id only when drawn, and only the newest ones up to
  ``IMAGE_PAGE_BUDGET_BYTES`` inline (older ones on request, a few at a time), so showing
  them never pushes each other out of the session's image cache.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import Literal, Protocol, cast

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import backend
import state
from backend.chat import (
    IMAGE_FILE_TYPES,
    IMAGE_PAGE_BUDGET_BYTES,
    ChatLink,
    ChatView,
    Entry,
    ImageMessage,
    Notice,
    TextMessage,
    image_name,
    max_image_upload_mb,
    message_lines,
)
from formats import size_text
from plain import plain

# Entries drawn. Each redraw (twice a second) sends every one and the browser lays them
# all out again: measured here, 200 took 0.23 s of Python per redraw on a loaded machine and
# a sent line took 3.5-6.5 s to show; 50 took 0.05 s and 0.5-2.7 s. The link holds more.
RENDER_LIMIT = 50
LOG_HEIGHT_PX = 560  # the conversation scrolls inside this, following new messages
OPENED_MAX = 2  # older images shown on request at once (with the budget, within the cache)
STREAMLIT_PRESET_NAMES = frozenset({"user", "human", "ai", "assistant"})  # st.chat_message
INPUT = "chat_input"
OUTCOME = "chat_outcome"  # the last send's refusal, shown until the next send
OPENED = "chat_opened_images"


class Upload(Protocol):
    """What the chat input gives for an attached file (Streamlit's ``UploadedFile``)."""

    name: str

    def getvalue(self) -> bytes: ...


def main() -> None:
    state.require_room()
    st.title("Chat")
    try:
        state.chat_link()  # started (or found) before anything is drawn
    except backend.BackendError as exc:
        st.error(f"The chat is unavailable: {plain(str(exc))}")
        return
    st.chat_input(
        "Message (attach an image with the clip)",
        key=INPUT,
        accept_file=True,
        file_type=list(IMAGE_FILE_TYPES),
        max_upload_size=max_image_upload_mb(),
        on_submit=submitted,
    )
    conversation()
    outcome = st.session_state.get(OUTCOME)
    if outcome:
        st.error(plain(outcome))  # a refusal can quote what was sent


def submitted() -> None:
    """Send at once, in the submit callback: Streamlit runs it before the page script, so
    a rerun that a second message (or a timer) requests cannot cut in before the send, as
    it could in the page body. (``submit_mode="disable"`` would also keep two messages from
    racing, but with live fragments running the input measured here stayed disabled for
    good under load: never re-enabled.) The link is looked up now, not taken from the run
    that drew the input: a dropped websocket rebuilds the session's links meanwhile."""
    value = st.session_state.get(INPUT)
    if value is None:
        return
    try:
        link = state.chat_link()
    except backend.BackendError as exc:
        st.session_state[OUTCOME] = f"Message not sent: {exc}"
        return
    st.session_state[OUTCOME] = send(link, value.text, value.files)


def send(link: ChatLink, text: str, files: Sequence[Upload]) -> str | None:
    """Send what was submitted; ``None`` if all of it went out, else why not."""
    lines = message_lines(text)
    for sent, line in enumerate(lines):
        try:
            link.send(line)
        except backend.BackendError as exc:
            done = f" ({sent} of {len(lines)} lines were sent)" if sent else ""
            return f"Message not sent: {exc}{done}"
    for file in files:
        try:
            link.send_image(image_name(file.name), file.getvalue())
        except backend.BackendError as exc:
            return f"Image not sent: {exc}"
    return None


@st.fragment(run_every=state.LIVE_INTERVAL_S)
def conversation() -> None:
    try:
        link = state.chat_link()
    except backend.BackendError as exc:
        st.error(f"The chat is unavailable: {plain(str(exc))}")
        return
    view = link.snapshot()
    connection_status(view)
    entries = view.entries[-RENDER_LIMIT:]
    inline = images_inline(entries)
    with st.container(height=LOG_HEIGHT_PX, key="chat_log", autoscroll=True):
        if not entries:
            st.text("No messages yet. Say hello!")
        for entry in entries:
            draw(entry, link, view, inline)
    if view.typing:
        st.text(f"{', '.join(view.typing)} {'is' if len(view.typing) == 1 else 'are'} typing…")


def connection_status(view: ChatView) -> None:
    if view.status == "connected" or (view.status == "connecting" and not view.problem):
        return  # (a first connect takes a moment: no warning flashes on every visit)
    why = f": {plain(view.problem)}" if view.problem else ""
    if view.status == "closed":
        st.error(f"The chat stopped{why}. Leave the room and join again to follow it.")
    else:
        st.warning(f"Chat {view.status}{why}")


def images_inline(entries: Sequence[Entry]) -> set[int]:
    """The images drawn inline: the newest up to the page's budget, and those asked for."""
    chosen: set[int] = set()
    budget = IMAGE_PAGE_BUDGET_BYTES
    for entry in reversed(entries):
        if not isinstance(entry, ImageMessage):
            continue
        if entry.image.size > budget:
            break
        budget -= entry.image.size
        chosen.add(entry.id)
    return chosen | set(opened())


def opened() -> collections.deque[int]:
    found = st.session_state.get(OPENED)
    if not isinstance(found, collections.deque):
        found = collections.deque(maxlen=OPENED_MAX)
        st.session_state[OPENED] = found
    return cast("collections.deque[int]", found)


def draw(entry: Entry, link: ChatLink, view: ChatView, inline: set[int]) -> None:
    if isinstance(entry, Notice):
        st.text(f"· {entry.text}")
        return
    own = entry.user == link.user
    with chat_bubble(entry.user, own=own):
        st.text(f"{'you' if own else entry.user} · {clock(entry.ts_ms)}")
        if isinstance(entry, TextMessage):
            st.text(entry.content)
        else:
            draw_image(entry, link, view, entry.id in inline)


def chat_bubble(user: str, *, own: bool) -> DeltaGenerator:
    """Own messages get Streamlit's "user" style (icon and tint); a peer's show the first
    letter of their name, unless the name is one of Streamlit's presets (a peer called
    "user" must not look like you)."""
    if own:
        return st.chat_message("user")
    preset = user.casefold() in STREAMLIT_PRESET_NAMES
    return st.chat_message(user, avatar=":material/person:" if preset else None)


def draw_image(entry: ImageMessage, link: ChatLink, view: ChatView, inline: bool) -> None:
    meta = entry.image
    label = f"{meta.name} ({size_text(meta.size)})"
    shown = view.images.get(entry.id)
    failure = view.image_failures.get(entry.id)
    if shown is not None and inline:
        link.want_image(entry.id)  # keeps it fresh in the cache while it is on the page
        output_format = cast("Literal['PNG', 'JPEG', 'auto']", shown.output_format)
        st.image(shown.data, output_format=output_format, alt=meta.name)
        st.text(label)
    elif failure is not None:
        st.text(f"{label} could not be shown: {failure}")
    elif inline:
        link.want_image(entry.id)
        st.text(f"{label} loading…")
    else:
        st.text(f"{label}: an older image, not loaded")
        if st.button("Show", key=f"chat_show_image_{entry.id}", icon=":material/image:"):
            opened().append(entry.id)
            st.rerun(scope="fragment")


def clock(ts_ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts_ms / 1000))


main()
