"""Home in a real browser: create a room, join it by its code from a second person, refusals
shown on the page (fixtures and steps: ``tests/e2e/browser.py``)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser import create_room, join_room, open_home, open_tab, type_into

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_create_a_room_then_someone_joins_it_by_its_code(browser: Browser, ui_url: str) -> None:
    alice = open_home(browser, ui_url)
    type_into(alice, "Your name", "alice")
    alice.get_by_role("button", name="Create a new room").click()
    room = alice.get_by_role("heading", name=re.compile(r"^Room \d{4}$"))
    expect(room).to_be_visible()
    code = room.inner_text().split()[-1]
    expect(alice.get_by_text("You are alice.")).to_be_visible()

    bob = open_home(browser, ui_url)  # another browser context: another session
    type_into(bob, "Your name", "bob")
    open_tab(bob, "Join a room", bob.get_by_role("textbox", name="Room code"))
    type_into(bob, "Room code", code)
    bob.get_by_role("button", name="Join").click()
    expect(bob.get_by_role("heading", name=f"Room {code}")).to_be_visible()
    expect(bob.get_by_text("You are bob.")).to_be_visible()


def test_refusals_are_shown_on_the_page(browser: Browser, ui_url: str) -> None:
    page = open_home(browser, ui_url)
    type_into(page, "Your name", "carol")
    open_tab(page, "Join a room", page.get_by_role("textbox", name="Room code"))
    # The client's own check: never sent.
    type_into(page, "Room code", "12")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_text(re.compile("room code must be 4 digits"))).to_be_visible()
    # The server's answer: a fresh server has no rooms at all.
    type_into(page, "Room code", "1000")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_text("no room 1000")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(r"^Room "))).to_have_count(0)


def test_leaving_the_room_ends_the_persons_presence(browser: Browser, ui_url: str) -> None:
    # The original only forgot its clients on "Leave": the sockets stayed open and the user
    # stayed present in the room for everyone else.
    alice = open_home(browser, ui_url)
    code = create_room(alice, "alice")
    bob = open_home(browser, ui_url)
    join_room(bob, "bob", code)
    expect(alice.get_by_text("People here (2)")).to_be_visible()
    bob.get_by_role("button", name="Leave room").click()
    expect(bob.get_by_role("button", name="Create a new room")).to_be_visible()
    expect(alice.get_by_text("People here (1)")).to_be_visible()
    # A reload does not bring the left room back (the tab's saved login was erased).
    bob.reload()
    expect(bob.get_by_role("heading", name="SyncroX")).to_be_visible()
    bob.wait_for_timeout(2000)
    expect(bob.get_by_role("button", name="Create a new room")).to_be_visible()
    expect(bob.get_by_role("heading", name=f"Room {code}")).to_have_count(0)
