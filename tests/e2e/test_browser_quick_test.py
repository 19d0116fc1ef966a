"""The seed's five-step quick test, as two people do it in a real browser against one
``syncrox-trio run`` (every service, the web UI and the Docker sandbox):

| Step | Action | Expected |
|---|---|---|
| 1 | Click "Create New Room" | 4-digit code appears |
| 2 | Open new tab, enter code | Join as second user |
| 3 | Send chat message | Instant delivery |
| 4 | Upload file | See congestion graph |
| 5 | Run code | Docker execution works |

The steps reuse what each page's own browser test does (``test_browser_<page>.py``).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser import ROOM_HEADING, go_to, join_room, open_home, running_ui, type_into
from tests.e2e.test_browser_chat import log, open_chat, say, shown_once
from tests.e2e.test_browser_execution import last_run, open_execution, run_code
from tests.e2e.test_browser_files import files_page, pick
from tests.sandbox.engine_env import usable_engine

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.docker]

UPLOAD_BYTES = 200_000


def test_the_seeds_quick_test(browser: Browser, tmp_path: Path) -> None:
    source = tmp_path / "notes.bin"
    source.write_bytes(random.Random(5).randbytes(UPLOAD_BYTES))
    with usable_engine(), running_ui(tmp_path / "data") as (url, _ports):
        # 1. Create a room: a 4-digit code appears.
        alice = open_home(browser, url)
        type_into(alice, "Your name", "alice")
        alice.get_by_role("button", name="Create a new room").click()
        heading = alice.get_by_role("heading", name=ROOM_HEADING)
        expect(heading).to_be_visible()
        code = heading.inner_text().split()[-1]
        assert re.fullmatch(r"\d{4}", code)

        # 2. Another tab (another person) enters the code and joins; both see each other.
        bob = open_home(browser, url)
        join_room(bob, "bob", code)
        expect(alice.get_by_text("People here (2)")).to_be_visible()

        # 3. A chat message is delivered to the other at once.
        open_chat(alice)
        open_chat(bob)
        say(alice, "hello from alice")
        expect(log(bob).get_by_text("hello from alice", exact=True)).to_be_visible()
        shown_once(bob, "hello from alice")

        # 4. Upload a file: the congestion graph shows (live, then in the result).
        files_page(alice)
        alice.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(source)
        pick(alice, "Network", "1 % loss")
        alice.get_by_role("button", name="Start upload", exact=True).click()
        expect(alice.get_by_text("Stored: verified by SHA-256 on the server.")).to_be_visible()
        go_to(alice, "Congestion Control Analytics")
        expect(alice.get_by_role("heading", name="CWND vs Event Sequence")).to_be_visible()
        expect(alice.locator(".vega-embed").first).to_be_visible()

        # 5. Run code: the Docker sandbox executes it.
        open_execution(bob)
        run_code(bob, "python", "print(sum(range(10)))\n")
        expect(last_run(bob).get_by_text(re.compile(r"^OK: "))).to_be_visible()
        expect(last_run(bob).get_by_text("45", exact=True)).to_be_visible()
