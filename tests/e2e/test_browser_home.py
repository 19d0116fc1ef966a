"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against a real
``syncrox-trio run`` (every service and the Streamlit UI, one command).

Tests that claim a browser never fake it: without Chromium they skip, unless
``SYNCROX_REQUIRE_BROWSER=1`` (set by ``.ci/run``; ``make test`` installs Debian's
``chromium`` when it runs as root), in which case they fail. Playwright never downloads a
browser here: it launches the system one (``executable_path``) with flags that work in a
container without a display or a sandbox (../shared/notes/docker-here.md).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.process import running_server
from tests.e2e.test_run_command import wait_for_ui_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REQUIRE_ENV = "SYNCROX_REQUIRE_BROWSER"
# Generous: on a loaded 2-core machine Streamlit's page can lose its connection for a while
# (its inputs are disabled until it reconnects); one such wait once outlasted 30 s.
STEP_TIMEOUT_MS = 60_000
expect.set_options(timeout=STEP_TIMEOUT_MS)  # checks too, not only actions (5 s otherwise)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "no Chromium (Debian's chromium package; make test installs it as root)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1")
        pytest.skip(reason)
    return path


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh profile directory of its own.
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def ui_url(tmp_path: Path) -> Iterator[str]:
    data_dir = tmp_path / "data"
    with running_server(data_dir, extra=()):
        yield f"http://127.0.0.1:{wait_for_ui_port(data_dir)}/"


def open_home(browser: Browser, url: str) -> Page:
    page = browser.new_context().new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(url)
    expect(page.get_by_role("heading", name="SyncroX")).to_be_visible()
    return page


def type_into(page: Page, label: str, text: str) -> None:
    """Type into a Streamlit text input and commit it (Enter), as a user would."""
    field = page.get_by_role("textbox", name=label)
    field.fill(text)
    field.press("Enter")
    expect(field).to_have_value(text)


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
    bob.get_by_role("tab", name="Join a room").click()
    type_into(bob, "Room code", code)
    bob.get_by_role("button", name="Join").click()
    expect(bob.get_by_role("heading", name=f"Room {code}")).to_be_visible()
    expect(bob.get_by_text("You are bob.")).to_be_visible()


def test_refusals_are_shown_on_the_page(browser: Browser, ui_url: str) -> None:
    page = open_home(browser, ui_url)
    type_into(page, "Your name", "carol")
    page.get_by_role("tab", name="Join a room").click()
    # The client's own check: never sent.
    type_into(page, "Room code", "12")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_text(re.compile("room code must be 4 digits"))).to_be_visible()
    # The server's answer: a fresh server has no rooms at all.
    type_into(page, "Room code", "1000")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_text("no room 1000")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(r"^Room "))).to_have_count(0)
