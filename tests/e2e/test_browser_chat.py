"""Chat in a real browser, two people (two browser contexts) on one ``syncrox-trio run``:
text both ways, shown once; an image attached in one shows as an image in the other; an
XSS attempt reads as text, runs nothing and fetches nothing; a reload keeps the room and
shows each message once; closing a context makes the other see that person leave."""

from __future__ import annotations

import re
import struct
import zlib
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Dialog, FilePayload, Locator, Page, Request, expect

from tests.e2e.browser import create_room, go_to, join_room, open_home

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS_HTML = "<img src=x onerror=alert(1)>"
XSS_MARKDOWN = "![x](http://example.invalid/a.png)"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def small_png(side: int = 32) -> bytes:
    """A valid greyscale PNG with a gradient, made here (zlib + struct). Not smaller:
    Streamlit keeps a placeholder in place of an image a few pixels wide."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + bytes(range(0, 8 * side, 8)) for _ in range(side))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Watch:
    """What a page does behind the scenes: dialogs opened, requests to other hosts."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.foreign: list[str] = []
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Request) -> None:
        host = urlsplit(request.url).hostname
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host not in LOCAL_HOSTS:
            self.foreign.append(request.url)


def log(page: Page) -> Locator:
    """The conversation (the chat page's scrolling container)."""
    return page.locator(".st-key-chat_log")


def say(page: Page, text: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def attach(page: Page, name: str, data: bytes) -> None:
    """Attach a file with the chat input's clip (its file chooser), as a person would."""
    chooser = page.get_by_test_id("stChatInputFileUploadButton").locator("input[type=file]")
    chooser.set_input_files(files=[FilePayload(name=name, mimeType="image/png", buffer=data)])
    # Uploaded to the UI server once its chip offers "Remove" (before: "Cancel upload"); a
    # message submitted earlier goes without it, as it would for a person.
    expect(page.get_by_role("button", name=f"Remove {name}")).to_be_visible()


def shown_once(page: Page, text: str) -> None:
    """``text`` is in the conversation as one message's text, exactly once."""
    expect(log(page).get_by_text(text, exact=True)).to_have_count(1)


def open_chat(page: Page) -> None:
    go_to(page, "Chat")
    expect(page.get_by_role("heading", name="Chat")).to_be_visible()
    expect(page.get_by_test_id("stChatInputTextArea")).to_be_editable()


def test_two_people_chat_with_text_images_xss_reload_and_leaving(
    browser: Browser, ui_url: str
) -> None:
    alice = open_home(browser, ui_url)
    alice_watch = Watch(alice)
    code = create_room(alice, "alice")
    bob = open_home(browser, ui_url)
    bob_watch = Watch(bob)
    join_room(bob, "bob", code)
    open_chat(alice)
    open_chat(bob)

    say(alice, "hello bob")
    shown_once(bob, "hello bob")
    shown_once(alice, "hello bob")
    expect(bob.get_by_text("alice · ")).to_have_count(1)  # a peer's message: their name
    expect(alice.get_by_text(re.compile(r"^you · "))).to_have_count(1)  # own: "you"
    say(bob, "hi alice")
    shown_once(alice, "hi alice")
    shown_once(bob, "hi alice")

    # (Each sent line is seen before the next: Streamlit keeps one pending value per input,
    # so two submitted within a few milliseconds can collapse into the last; see the page.)
    say(alice, XSS_HTML)
    shown_once(alice, XSS_HTML)
    say(alice, XSS_MARKDOWN)
    shown_once(bob, XSS_HTML)
    shown_once(bob, XSS_MARKDOWN)
    expect(log(bob).locator("img")).to_have_count(0)  # neither became an image
    expect(log(bob).get_by_role("link")).to_have_count(0)

    say(bob, "line one\nline two")  # Shift+Enter lines: one message each
    shown_once(alice, "line one")
    shown_once(alice, "line two")

    # Refusals: one line on the page, the service's reason; the next send clears it.
    say(alice, "x" * 5000)
    expect(alice.get_by_text("Message not sent: line longer than 4096 bytes")).to_be_visible()
    attach(alice, "fake.png", b"just some text, not an image")
    say(alice, "a fake attached")
    expect(alice.get_by_text("Image not sent: not a png, jpeg, gif or webp image")).to_be_visible()
    shown_once(bob, "a fake attached")

    # An image through the chat input's file chooser (its clip button), with a message.
    png = small_png()
    assert len(png) < 1024  # so that its label says "<n> bytes"
    attach(alice, "dot.png", png)
    say(alice, "a picture")
    expect(alice.get_by_text("Image not sent")).to_have_count(0)
    shown_once(bob, "a picture")
    expect(log(bob).get_by_role("img", name="dot.png")).to_have_count(1)
    shown_once(bob, f"dot.png ({len(png)} bytes)")
    expect(log(alice).get_by_role("img", name="dot.png")).to_have_count(1)

    bob.reload()  # a new Streamlit session: the tab's saved login brings bob back
    expect(bob.get_by_text(f"bob · room {code}")).to_be_visible()
    open_chat(bob)
    for text in ("hello bob", "hi alice", XSS_HTML, XSS_MARKDOWN, "a picture"):
        shown_once(bob, text)
    expect(log(bob).get_by_role("img", name="dot.png")).to_have_count(1)

    alice.context.close()  # alice's tab goes away: her session's links are released
    expect(log(bob).get_by_text("· alice left", exact=True)).to_have_count(1)
    sidebar = bob.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("People here (1)")).to_be_visible()
    expect(sidebar.get_by_text("bob", exact=True)).to_be_visible()

    assert alice_watch.dialogs == [] and bob_watch.dialogs == []
    assert alice_watch.foreign == [] and bob_watch.foreign == []
