"""The UI's modules import each other as top-level modules (``import backend``), as
Streamlit runs them from ``frontend/``: tests import them the same way."""

from __future__ import annotations

import sys
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
if str(FRONTEND) not in sys.path:
    sys.path.insert(0, str(FRONTEND))
