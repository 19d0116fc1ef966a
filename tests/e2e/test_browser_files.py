"""File Transfer in a real browser: alice uploads under 5 % emulated loss and watches it
live; bob, in the same room, sees the file, downloads it byte-identical and deletes it
(fixtures and steps: ``tests/e2e/browser.py``)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import create_room, go_to, join_room, open_home

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZE = 300_000  # ~74 chunks each way at 5 % loss, seed 1: the first loss comes early


def files_page(page: Page) -> None:
    go_to(page, "File Transfer")
    expect(page.get_by_role("heading", name="File Transfer")).to_be_visible()


def pick(page: Page, label: str, option: str) -> None:
    """Choose ``option`` in a Streamlit selectbox, as a person does (open it, click)."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.get_by_role("combobox", name=label)).to_have_value(option)


def metric(page: Page, label: str) -> str:
    card = page.get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True))
    return card.get_by_test_id("stMetricValue").inner_text()


def test_upload_under_loss_then_another_downloads_and_deletes_it(
    browser: Browser, ui_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "lossy sample.bin"
    source.write_bytes(random.Random(13).randbytes(SIZE))
    alice = open_home(browser, ui_url)
    code = create_room(alice, "alice")
    bob = open_home(browser, ui_url)
    join_room(bob, "bob", code)
    files_page(alice)
    files_page(bob)
    expect(alice.get_by_text("No files in this room yet.")).to_be_visible()

    alice.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(source)
    expect(alice.get_by_text("lossy sample.bin").first).to_be_visible()
    pick(alice, "Network", "5 % loss")
    start = alice.get_by_role("button", name="Start upload", exact=True)
    expect(start).to_be_enabled()
    start.click()
    expect(alice.get_by_text(re.compile(r"\(100%\)"))).to_be_visible()
    expect(alice.get_by_text("Stored: verified by SHA-256 on the server.")).to_be_visible()
    assert int(metric(alice, "Retransmissions")) >= 1
    expect(alice.get_by_text("CWND vs Event Sequence", exact=False).first).to_be_attached()

    # Bob's list refreshes on its own.
    detail = f"lossy sample.bin: {SIZE:,} bytes"
    expect(bob.get_by_text(re.compile(rf"^{re.escape(detail)}"))).to_be_visible()
    bob.get_by_role("button", name="Download file", exact=True).click()
    save = bob.get_by_role("button", name="Save file", exact=True)
    with bob.expect_download() as arrival:
        save.click()
    saved = tmp_path / "bob.bin"
    arrival.value.save_as(saved)
    assert arrival.value.suggested_filename == "lossy sample.bin"
    assert saved.read_bytes() == source.read_bytes()

    bob.get_by_role("button", name="Delete file", exact=True).click()
    expect(bob.get_by_text("No files in this room yet.")).to_be_visible()
    expect(alice.get_by_text("No files in this room yet.")).to_be_visible()

    # The result links to that transfer in Analytics (which preselects it).
    alice.get_by_role("button", name="Open in Analytics", exact=True).click()
    heading = alice.get_by_role("heading", name="Congestion Control Analytics")
    expect(heading).to_be_visible()
