"""The UI's modules import each other as top-level modules (``import backend``), as
Streamlit runs them from ``frontend/``: tests import them the same way. ``server``: a real
``syncrox-trio run`` (no UI) that the UI's code finds through ``SYNCROX_PORTS_FILE``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.process import running_server

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
if str(FRONTEND) not in sys.path:
    sys.path.insert(0, str(FRONTEND))


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as (_, ports):
        monkeypatch.setenv("SYNCROX_PORTS_FILE", str(data_dir / "ports.json"))
        yield ports
