"""Fixtures of the browser tests (see ``tests/e2e/browser.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.e2e.browser import launched_browser, running_ui


@pytest.fixture
def browser() -> Iterator[Browser]:
    with launched_browser() as launched:
        yield launched


@pytest.fixture
def ui_url(tmp_path: Path) -> Iterator[str]:
    with running_ui(tmp_path / "data") as (url, _ports):
        yield url
