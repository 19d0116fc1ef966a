"""``make screenshots``: the README's pictures, taken by the browser tests' Chromium against a
live ``syncrox-trio run`` with real data made through the pages themselves (two people
chatting with an image, a Tahoe and a Reno upload through 5 % emulated loss compared in
Analytics, code run in the sandbox). Writes ``docs/screenshots/<page>.png``.

    .venv/bin/python -m tests.e2e.screenshots [--out docs/screenshots]

Code execution needs the Docker engine (``make screenshots`` brings up the private one as
``make run`` does); without it that page shows ``SANDBOX_UNAVAILABLE``, as it would for a user.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.browser import create_room, go_to, join_room, launched_browser, running_ui
from tests.e2e.test_browser_chat import attach, log, open_chat, say, small_png
from tests.e2e.test_browser_execution import last_run, open_execution, run_code
from tests.e2e.test_browser_files import files_page, pick

VIEWPORT = {"width": 1400, "height": 900}
OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPLOAD_BYTES = 600_000
SETTLE_MS = 1500
MAX_HEIGHT = 3200  # live fragments and charts finish drawing


def new_person(browser: object, url: str) -> Page:
    page: Page = browser.new_context(viewport=VIEWPORT).new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(60_000)
    page.goto(url)
    return page


def shoot(page: Page, out: Path, name: str) -> None:
    """The whole page: Streamlit scrolls its main area inside the window, so the window is
    made as tall as that area's content for the picture, then put back."""
    page.wait_for_timeout(SETTLE_MS)
    tall = page.evaluate(
        "() => Math.max(...['stMain', 'stMainBlockContainer', 'stAppViewContainer']"
        '.map((id) => document.querySelector(`[data-testid="${id}"]`))'
        ".filter(Boolean).map((e) => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(tall) + 40, MAX_HEIGHT)})
    page.wait_for_timeout(SETTLE_MS)
    page.screenshot(path=str(out / f"{name}.png"))
    page.set_viewport_size(VIEWPORT)
    print(f"wrote {out / name}.png")


def chat(alice: Page, bob: Page, out: Path) -> None:
    open_chat(alice)
    open_chat(bob)
    say(alice, "Week 3 slides are up. Compare Tahoe and Reno under 5 % loss, please.")
    say(bob, "On it. Here is the topology I will use:")
    # Attach once the sent line is drawn: a file picked in the very rerun that a submit
    # starts is lost by Streamlit's chat input (a person is never that fast).
    expect(log(bob).get_by_text("On it. Here is the topology I will use:")).to_be_visible()
    attach(bob, "topology.png", small_png(32))
    say(bob, "Sent from the web UI.")
    say(alice, "<b>this is not bold</b>: peer text is never HTML")
    expect(log(alice).locator("img").first).to_be_visible()
    shoot(alice, out, "chat")


def upload(page: Page, source: Path, algo: str) -> None:
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(source)
    pick(page, "Congestion control", algo)
    pick(page, "Network", "5 % loss")
    page.get_by_role("button", name="Start upload", exact=True).click()
    expect(page.get_by_text("Stored: verified by SHA-256 on the server.")).to_be_visible()


def files(alice: Page, out: Path, scratch: Path) -> None:
    files_page(alice)
    source = scratch / "lecture-3.bin"
    source.write_bytes(random.Random(3).randbytes(UPLOAD_BYTES))
    upload(alice, source, "Tahoe")
    upload(alice, source, "Reno")
    shoot(alice, out, "files")


def analytics(page: Page, out: Path) -> None:
    go_to(page, "Congestion Control Analytics")
    expect(page.get_by_role("heading", name="CWND vs Event Sequence")).to_be_visible()
    page.get_by_role("combobox").first.click()  # the newest (Reno) is picked: add Tahoe
    page.get_by_role("option", name=re.compile(r"· Tahoe ·")).click()
    page.keyboard.press("Escape")
    expect(page.locator(".vega-embed")).to_have_count(5)
    shoot(page, out, "analytics")


def execution(bob: Page, out: Path) -> None:
    open_execution(bob)
    program = "name = input()\nfor i in range(3):\n    print(f'hello {name} #{i}')\n"
    run_code(bob, "python", program, "SyncroX")
    expect(last_run(bob).get_by_text(re.compile(r"^(OK|SANDBOX_UNAVAILABLE)"))).to_be_visible()
    shoot(bob, out, "execution")


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--out", type=Path, default=OUT)
    out: Path = options.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_ui(Path(scratch) / "data") as (url, _ports),
        launched_browser() as browser,
    ):
        alice = new_person(browser, url)
        code = create_room(alice, "alice")
        bob = new_person(browser, url)
        join_room(bob, "bob", code)
        expect(alice.get_by_text("People here (2)")).to_be_visible()
        shoot(alice, out, "home")
        chat(alice, bob, out)
        files(alice, out, Path(scratch))
        analytics(bob, out)
        execution(bob, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
