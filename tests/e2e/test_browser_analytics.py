"""Congestion Control Analytics in a real browser: a Tahoe and a Reno upload of the same file
under the same 5 % emulated loss (made by the client library against the same server, as
``syncrox-trio send`` makes them), compared by another member of the room: the seed's three
charts under their titles, both algorithms, and the CSV and qlog exports parse."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
import trio
from playwright.sync_api import Browser, Page, expect

from syncrox.client.files import FilesClient, TransferOptions, upload
from syncrox.client.rooms import RoomsClient
from syncrox.netem import NetemConfig
from syncrox.services.files_export import CSV_COLUMNS
from tests.e2e.browser import go_to, join_room, open_home, running_ui

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOST = "127.0.0.1"
TITLES = ("RTT vs Chunk Sequence", "CWND vs Event Sequence", "Window Size vs Transmission Round")
TRANSFER_TIMEOUT_S = 60


async def new_room(ports: dict[str, int]) -> tuple[str, str]:
    """Alice's room: its code and her membership token."""
    with trio.fail_after(TRANSFER_TIMEOUT_S):
        async with RoomsClient.connect(HOST, ports["rooms"]) as rooms:
            return await rooms.create("alice")


async def two_lossy_uploads(ports: dict[str, int], token: str, source: Path) -> dict[str, str]:
    """A Tahoe and a Reno upload of ``source`` by Alice under the same loss and seed; each
    algorithm's transfer id."""
    ids: dict[str, str] = {}
    with trio.fail_after(TRANSFER_TIMEOUT_S):
        async with FilesClient.connect(HOST, ports["files_tcp"]) as files:
            await files.auth(token)
            for algo in ("tahoe", "reno"):
                options = TransferOptions(algo=algo, netem=NetemConfig(loss=0.05, seed=1))
                sent = await upload(files, HOST, source, options)
                assert sent.ok and sent.events_reported > 0, sent
                assert sent.retransmissions > 0  # the loss is real: something was resent
                ids[algo] = sent.transfer_id
    return ids


def choose(page: Page, option: str) -> None:
    """Add an option to the transfers multiselect, as a person does: open it, click it."""
    page.get_by_role("combobox").first.click()
    page.get_by_role("option", name=option).click()
    page.keyboard.press("Escape")


def fetched(page: Page, button: str, transfer_id: str) -> bytes:
    """Click an export button of one transfer; the bytes the browser saved."""
    row = page.locator('[data-testid="stHorizontalBlock"]').filter(has_text=transfer_id[:6])
    with page.expect_download() as info:
        row.get_by_role("button", name=button).click()
    path = info.value.path()
    return Path(path).read_bytes()


def test_a_tahoe_and_a_reno_upload_compared(browser: Browser, tmp_path: Path) -> None:
    source = tmp_path / "lecture.bin"
    source.write_bytes(random.Random(7).randbytes(300_000))
    with running_ui(tmp_path / "data") as (url, ports):
        code, token = trio.run(new_room, ports)
        page = open_home(browser, url)
        join_room(page, "bob", code)
        go_to(page, "Congestion Control Analytics")
        expect(page.get_by_role("heading", name="Congestion Control Analytics")).to_be_visible()
        expect(page.get_by_text("No transfer in this room yet")).to_be_visible()

        ids = trio.run(two_lossy_uploads, ports, token, source)
        go_to(page, "Congestion Control Analytics")  # opened again: the new transfers
        # The newest transfer (Reno) is picked at first; add Tahoe's.
        choose(page, "lecture.bin · upload · Tahoe · JSON · 293.0 KiB")
        for algo in ("Tahoe", "Reno"):
            expect(page.get_by_text(f"{algo} · upload lecture.bin").first).to_be_visible()

        for title in TITLES:
            expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        # Two per-transfer panels for each of the first two charts, one overlay for rounds.
        expect(page.locator(".vega-embed")).to_have_count(5)
        expect(page.get_by_role("table")).to_contain_text("Tahoe · upload lecture.bin")
        expect(page.get_by_role("table")).to_contain_text("Reno · upload lecture.bin")

        for algo, transfer_id in ids.items():
            lines = fetched(page, "CSV", transfer_id).decode().splitlines()
            rows = list(csv.DictReader(lines))
            assert tuple(next(csv.reader(io.StringIO(lines[0])))) == CSV_COLUMNS
            assert rows and {row["algo"] for row in rows} == {algo}
            assert any(row["event"] == "FAST_RETRANSMIT" for row in rows)
            qlog = json.loads(fetched(page, "qlog", transfer_id))
            assert qlog["qlog_version"] == "0.3"
            assert qlog["traces"][0]["configuration"]["algo"] == algo
            assert len(qlog["traces"][0]["events"]) == len(rows)
