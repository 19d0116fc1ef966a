"""Shared by the browser tests: Debian's Chromium driven by Playwright against one real
``syncrox-trio run`` (every service and the Streamlit UI), and the steps a person takes.

Tests that claim a browser never fake it: without Chromium they skip, unless
``SYNCROX_REQUIRE_BROWSER=1`` (set by ``.ci/run``; ``make test`` installs Debian's
``chromium`` when it runs as root), in which case they fail. Playwright never downloads a
browser here: it launches the system one (``executable_path``) with flags that work in a
container without a display or a sandbox (../shared/notes/docker-here.md). Two people are
two browser contexts (two Streamlit sessions, as two tabs of two browsers would be).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.e2e.process import running_server
from tests.e2e.test_run_command import wait_for_ui_port

REQUIRE_ENV = "SYNCROX_REQUIRE_BROWSER"
# Generous: on a loaded 2-core machine Streamlit's page can lose its connection for a while
# (its inputs are disabled until it reconnects); one such wait once outlasted 30 s.
STEP_TIMEOUT_MS = 60_000
expect.set_options(timeout=STEP_TIMEOUT_MS)  # checks too, not only actions (5 s otherwise)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ROOM_HEADING = re.compile(r"^Room \d{4}$")
TAB_ATTEMPTS = 4
TAB_WAIT_MS = 5_000


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "no Chromium (Debian's chromium package; make test installs it as root)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1")
        pytest.skip(reason)
    return path


@contextmanager
def launched_browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh profile directory of its own.
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def running_ui(data_dir: Path, extra: Sequence[str] = ()) -> Iterator[tuple[str, dict[str, int]]]:
    """A real ``syncrox-trio run`` with the web UI: its URL and its ports."""
    with running_server(data_dir, extra=tuple(extra)) as (_, ports):
        yield f"http://127.0.0.1:{wait_for_ui_port(data_dir)}/", ports


def open_home(browser: Browser, url: str) -> Page:
    """A new person: a new browser context (its own cookies, storage and session)."""
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


def open_tab(page: Page, tab: str, shows: Locator) -> None:
    """Click a tab until what it holds shows: a rerun landing with the click (the page's
    first runs, a committed input) can draw the tabs afresh on their first one, and a
    person then clicks again. Seen in CI: the join tab's field never appeared."""
    for _ in range(TAB_ATTEMPTS - 1):
        page.get_by_role("tab", name=tab).click()
        try:
            expect(shows).to_be_visible(timeout=TAB_WAIT_MS)
        except AssertionError:
            continue
        return
    page.get_by_role("tab", name=tab).click()
    expect(shows).to_be_visible()


def create_room(page: Page, user: str) -> str:
    """Create a room from Home as ``user``; return its code."""
    type_into(page, "Your name", user)
    page.get_by_role("button", name="Create a new room").click()
    heading = page.get_by_role("heading", name=ROOM_HEADING)
    expect(heading).to_be_visible()
    return heading.inner_text().split()[-1]


def join_room(page: Page, user: str, code: str) -> None:
    type_into(page, "Your name", user)
    open_tab(page, "Join a room", page.get_by_role("textbox", name="Room code"))
    type_into(page, "Room code", code)
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("heading", name=f"Room {code}")).to_be_visible()


def go_to(page: Page, title: str) -> None:
    """Open a page from the navigation in the sidebar (as a person clicks it)."""
    page.get_by_role("link", name=title, exact=True).first.click()
