"""Code Execution in a real browser against one real ``syncrox-trio run`` and a real engine:
Python with stdin, a C compile error, an infinite loop's time limit; the room's history lists
them with their detail (a room-mate sees the same stdin), and someone in another room sees
none of them. Without an engine the page says so
plainly (fixtures and steps: ``tests/e2e/browser.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.browser import create_room, go_to, join_room, open_home, running_ui
from tests.sandbox.engine_env import usable_engine

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A short run limit ends the infinite loop quickly (the compile limit stays the default), yet
# leaves time (4 s) for a second person's run to meet it on a busy machine; one job at a time
# and no queue, so that run is answered BUSY.
LIMITS = [
    *("--set", "exec.sandbox.run_time_limit_s=4"),
    *("--set", "exec.max_concurrent_runs=1"),
    *("--set", "exec.max_queued_runs=0"),
]
NO_ENGINE = ["--set", "exec.sandbox.docker_host=unix:///nonexistent/docker.sock"]
GREETER = "import sys\nprint('hello ' + sys.stdin.read().strip())\n"
BROKEN_C = "int main(void) { return undefined_name; }\n"
FOREVER = "while True:\n    pass\n"
OPEN_ATTEMPTS = 4
OPEN_WAIT_MS = 10_000


def open_execution(page: Page) -> None:
    go_to(page, "Code Execution")
    expect(page.get_by_role("heading", name="Code Execution")).to_be_visible()


def choose(page: Page, widget: Locator, option: str | re.Pattern[str]) -> None:
    """Open a select box and pick an option. A rerun landing at the moment it opens (the
    sidebar's live fragment, a busy machine) can close the list: open it again."""
    for _ in range(OPEN_ATTEMPTS - 1):
        widget.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=OPEN_WAIT_MS)
        except PlaywrightTimeoutError:
            continue
        return
    widget.click()
    page.get_by_role("option", name=option, exact=True).click()


def write_code(page: Page, language: str, code: str, stdin: str = "") -> None:
    """Pick the language, type the code and the input (each committed), as a person does."""
    choose(page, page.get_by_test_id("stSelectbox").filter(has_text="Language"), language)
    # The code's label names the language once the page has switched to it.
    code_field = page.get_by_role("textbox", name=f"Code ({language})")
    stdin_field = page.get_by_role("textbox", name="Input (stdin)")
    for field, text in ((code_field, code), (stdin_field, stdin)):
        field.fill(text)
        field.press("Control+Enter")  # commits a text area, as leaving it does
        expect(field).to_have_value(text)


def run_code(page: Page, language: str, code: str, stdin: str = "") -> None:
    write_code(page, language, code, stdin)
    page.get_by_role("button", name="Run").click()


def last_run(page: Page) -> Locator:
    """This tab's own last run (keyed containers carry a ``st-key-<key>`` class)."""
    return page.locator(".st-key-exec_last_run")


def run_detail(page: Page) -> Locator:
    return page.locator(".st-key-exec_run_detail")


def history_caption(page: Page, shown: int, total: int) -> None:
    text = f"{shown} of the room's latest {total} runs"
    expect(page.get_by_text(text)).to_be_visible()


@pytest.mark.docker
def test_runs_show_their_verdicts_and_only_the_rooms_history(
    browser: Browser, tmp_path: Path
) -> None:
    with usable_engine(), running_ui(tmp_path / "data", extra=LIMITS) as (url, _):
        alice = open_home(browser, url)
        room = create_room(alice, "alice")
        open_execution(alice)
        expect(alice.get_by_text("No runs in this room yet.")).to_be_visible()
        mine = last_run(alice)

        run_code(alice, "python", GREETER, "Bob\n")
        expect(mine.get_by_text(re.compile(r"^OK: "))).to_be_visible()
        expect(mine.locator("code").filter(has_text="hello Bob")).to_be_visible()
        history_caption(alice, 1, 1)
        # The newest run's detail, from the room's history: its code and its stdin, the same
        # for a room-mate who never saw the run happen.
        carol = open_home(browser, url)
        join_room(carol, "carol", room)
        open_execution(carol)
        for page in (alice, carol):
            expect(run_detail(page).locator("code").filter(has_text="sys.stdin")).to_be_visible()
            expect(
                run_detail(page).locator("code").filter(has_text=re.compile(r"^Bob$"))
            ).to_be_visible()
        carol.context.close()

        run_code(alice, "c", BROKEN_C)
        expect(mine.get_by_text(re.compile(r"^COMPILE_ERROR: "))).to_be_visible()
        expect(mine.locator("code").filter(has_text="undefined_name")).to_be_visible()
        history_caption(alice, 2, 2)
        # The C run had no stdin: its detail says so.
        details = alice.get_by_test_id("stSelectbox").filter(has_text="Details of run")
        choose(alice, details, re.compile(r"^#2 · alice · c · COMPILE_ERROR"))
        expect(run_detail(alice).get_by_text("stdin: empty")).to_be_visible()

        bob = open_home(browser, url)  # someone else, in a room of their own
        create_room(bob, "bob")
        open_execution(bob)
        expect(bob.get_by_text("No runs in this room yet.")).to_be_visible()
        expect(last_run(bob).get_by_text("Nothing run from this tab yet.")).to_be_visible()
        write_code(bob, "python", GREETER, "x")

        # The server runs one job at a time and queues none: while alice's loop runs (the
        # spinner shows after 0.5 s), bob is told to come back later, plainly.
        run_code(alice, "python", FOREVER)
        expect(alice.get_by_text("Running in the sandbox")).to_be_visible()
        bob.get_by_role("button", name="Run").click()
        expect(last_run(bob).get_by_text(re.compile("the sandbox is busy"))).to_be_visible()
        expect(mine.get_by_text(re.compile(r"^TIMEOUT: "))).to_be_visible()

        history_caption(alice, 3, 3)
        table = alice.get_by_test_id("stDataFrame").locator("table")
        for verdict in ("OK", "COMPILE_ERROR", "TIMEOUT"):
            expect(table).to_contain_text(verdict)
        # Filters: only the C run has the verdict COMPILE_ERROR.
        verdicts = alice.get_by_test_id("stMultiSelect").filter(has_text="Verdict")
        choose(alice, verdicts, "COMPILE_ERROR")
        history_caption(alice, 1, 3)

        # Bob's room has no runs (his was refused); alice's are never listed there.
        bob.get_by_role("button", name="Refresh").click()
        expect(bob.get_by_text("No runs in this room yet.")).to_be_visible()
        expect(bob.get_by_test_id("stDataFrame")).to_have_count(0)
        expect(bob.get_by_text("alice")).to_have_count(0)


def test_without_an_engine_the_page_says_the_sandbox_is_unavailable(
    browser: Browser, tmp_path: Path
) -> None:
    with running_ui(tmp_path / "data", extra=NO_ENGINE) as (url, _):
        page = open_home(browser, url)
        create_room(page, "carol")
        open_execution(page)
        run_code(page, "python", GREETER, "x")
        unavailable = last_run(page).get_by_text(re.compile("The sandbox is unavailable right now"))
        expect(unavailable).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
        # Nothing ran, so nothing was recorded.
        expect(page.get_by_text("No runs in this room yet.")).to_be_visible()
